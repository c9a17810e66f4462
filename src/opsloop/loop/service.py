"""``opsloop up`` as a service: one controller per project, stopped cleanly by a signal.

* A lock file (``.opsloop/runtime/up.lock``) lets one ``up`` run per project, so two
  controllers never remediate twice; ``up.json`` beside it names the process that holds it.
* SIGTERM and SIGINT end the loop after the pass in progress; a second SIGINT stops at once.
* :func:`stop_loop` (``opsloop down``) asks the running ``up`` to stop and waits for it, then
  the local deployment servers are stopped.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil
from filelock import FileLock, Timeout

from opsloop.errors import ConfigError
from opsloop.store.liveness import gone_reason, this_process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import FrameType

    from opsloop.context import Project
    from opsloop.loop.controller import Controller, PassReport

__all__ = ["LoopInfo", "loop_info", "loop_lock", "run_until_stopped", "stop_loop"]

_LOCK = "up.lock"
_INFO = "up.json"


@dataclass(frozen=True)
class LoopInfo:
    """The ``opsloop up`` process of a project.

    Attributes:
        host: Its host.
        pid: Its process id.
        started: When it started (ISO 8601).
        process_started: Its process's start time, to tell a reused pid apart.
    """

    host: str
    pid: int
    started: str
    process_started: float | None = None

    @property
    def alive(self) -> bool:
        """Whether the process still runs (on this host; elsewhere it is assumed to)."""
        return (
            gone_reason(self.host, self.pid, self.process_started, None, datetime.now(UTC), 0.0)
            is None
        )


def _runtime_dir(project: Project) -> Path:
    folder = project.state_dir / "runtime"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def loop_info(project: Project) -> LoopInfo | None:
    """The project's running ``opsloop up``, if any."""
    file = project.state_dir / "runtime" / _INFO
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        info = LoopInfo(**data)
    except (OSError, ValueError, TypeError):
        return None
    return info if info.alive else None


@contextmanager
def loop_lock(project: Project) -> Iterator[LoopInfo]:
    """Hold the project's loop lock while the block runs.

    Raises:
        ConfigError: Another ``opsloop up`` holds it (the message names its process).
    """
    folder = _runtime_dir(project)
    lock = FileLock(str(folder / _LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        other = loop_info(project)
        who = f"process {other.pid} on {other.host}, since {other.started}" if other else "?"
        raise ConfigError(
            f"opsloop up is already running for {project.dir} ({who})",
            hint="stop it with 'opsloop down', or watch it with 'opsloop status'",
        ) from None
    me = this_process()
    info = LoopInfo(me.host, me.pid, datetime.now(UTC).isoformat(), me.started)
    info_file = folder / _INFO
    try:
        info_file.write_text(json.dumps(info.__dict__), encoding="utf-8")
        yield info
    finally:
        info_file.unlink(missing_ok=True)
        lock.release()


def run_until_stopped(
    controller: Controller,
    interval_s: float,
    *,
    on_pass: Callable[[PassReport], None],
    once: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Run the controller's passes until SIGTERM or SIGINT (or ``stop``); the pass in
    progress finishes first. A second SIGINT interrupts it."""
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handle)
    try:
        controller.run_forever(
            interval_s, stop=stop, on_pass=on_pass, max_passes=1 if once else None
        )
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_loop(project: Project, *, timeout_s: float = 120.0) -> LoopInfo | None:
    """Ask the project's running ``opsloop up`` to stop (SIGTERM) and wait until it has.

    Returns:
        The process that was stopped, or None when none ran.

    Raises:
        ConfigError: It runs on another host, or did not stop within ``timeout_s``.
    """
    info = loop_info(project)
    if info is None:
        return None
    if info.host != this_process().host:
        raise ConfigError(
            f"opsloop up for {project.dir} runs on {info.host} (process {info.pid}): stop it there"
        )
    try:
        proc = psutil.Process(info.pid)
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return info
    deadline = time.monotonic() + timeout_s
    while _running(proc):
        if time.monotonic() > deadline:
            raise ConfigError(
                f"opsloop up (process {info.pid}) did not stop within {timeout_s:g} s",
                hint=f"it may be in the middle of a remediation; 'kill {info.pid}' stops it now",
            )
        time.sleep(0.1)
    # The lock file is released by the process itself; give the file system a moment.
    deadline = time.monotonic() + 5
    while loop_info(project) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return info


def _running(proc: psutil.Process) -> bool:
    # An exited process stays a zombie until its parent reaps it: it is done all the same.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
