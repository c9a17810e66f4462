"""Tracking from any Python code, in the style of MLflow's fluent API.

    with opsloop.start_run(name="baseline") as run:
        opsloop.log_params({"lr": 0.1})
        for i in range(100):
            opsloop.log_metric("loss", 1 / (i + 1), step=i)
        opsloop.log_artifact("model.json")

Metric points are buffered (see :class:`MetricBuffer`) and written in batches; the buffer is
flushed when the run ends, when the code inside the ``with`` raises, and at process exit. A
daemon thread (one per process) writes points that have waited ``metric_flush_s`` and refreshes
each active run's heartbeat every ``heartbeat_s``, so that a killed process loses at most about
``metric_flush_s`` of points and its runs can be told dead (see ``Store.reap_dead_runs``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.context import Project, current_project
from opsloop.errors import TrackingError
from opsloop.gitutil import git_info
from opsloop.tracking.buffer import MetricBuffer
from opsloop.tracking.checks import (
    check_key,
    check_step,
    check_timestamp,
    check_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from opsloop.store import RunInfo, Store

logger = logging.getLogger("opsloop.tracking")


class ActiveRun:
    """A run in progress; a context manager that ends the run on exit.

    Attributes:
        id: The run id.
        name: The run name.
    """

    def __init__(self, info: RunInfo, project: Project) -> None:
        self.info = info
        self.id = info.id
        self.name = info.name
        self.project = project
        self.store: Store = project.store
        settings = project.settings
        self._buffer = MetricBuffer(
            self.store,
            info.id,
            capacity=settings.metric_buffer_size,
            flush_s=settings.metric_flush_s,
            heartbeat=True,
        )
        self._append = self._buffer.append
        self._points = self._buffer.points
        self._capacity = self._buffer.capacity
        self.heartbeat_s = settings.heartbeat_s
        self.tick_s = min(settings.metric_flush_s / 2, settings.heartbeat_s)
        self._beat_at = time.monotonic()
        self._steps: dict[str, int] = {}
        self.ended = False

    # Metric logging is the hot path: a known key, a float value and an int step in range cost
    # a few dict operations and comparisons; anything else goes through the checks.
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Log one metric point; ``step`` defaults to the next step of that key.

        Raises:
            TrackingError: The run has ended, or the key, value (any real number, NaN and
                infinities included), step (a 64-bit integer) or timestamp (epoch
                milliseconds) is invalid; nothing is logged then.
        """
        if self.ended:
            raise TrackingError(f"run {self.id} has ended; start a new run to log '{key}'")
        steps = self._steps
        try:
            last = steps.get(key)
        except TypeError:  # an unhashable key
            last = None
        if last is None:
            check_key(key)
            last = -1
        # Literal bounds, folded into constants by the compiler (STEP_MIN, STEP_MAX and
        # TIMESTAMP_MAX of the checks module), are cheaper than global lookups.
        if step is None:
            step = last + 1
            if step > 2**63 - 1:
                step = check_step(key, step)
        elif type(step) is not int or not -(2**63) <= step <= 2**63 - 1:
            step = check_step(key, step)
        if type(value) is not float:
            value = check_value(key, value)
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        elif type(timestamp) is not int or not 0 <= timestamp < 253_402_300_800_000:
            timestamp = check_timestamp(key, timestamp)
        steps[key] = step
        # MetricBuffer.add, inlined: a method call is a tenth of this path's cost.
        self._append((key, value, step, timestamp))
        if len(self._points) >= self._capacity:
            self._buffer.hand_off_full()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step and time."""
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            self.log_metric(k, v, step=step, timestamp=ts)

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters (fixed once logged)."""
        self.store.runs.log_params(self.id, params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (overwritable)."""
        self.store.runs.set_tags(self.id, tags)

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Store a file or folder in the artifact store and record it; returns its digest."""
        p = Path(path)
        if not p.exists():
            raise TrackingError(f"cannot log artifact: {p} does not exist")
        if p.is_dir():
            digest = self.project.artifacts.put_dir(p)
            size = self.project.artifacts.get_manifest(digest).size
            kind = "dir"
        else:
            digest = self.project.artifacts.put_file(p)
            size = p.stat().st_size
            kind = "file"
        self.store.runs.log_artifact(self.id, name or p.name, digest, size, kind)
        return digest

    def flush(self) -> None:
        """Write buffered metric points now."""
        self._buffer.flush()

    def _tick(self, now: float) -> None:
        """Write points that have waited long enough; say the run is alive when it is time."""
        self._buffer.tick(now)
        if now - max(self._beat_at, self._buffer.last_write) >= self.heartbeat_s:
            self._beat_at = now
            self.store.runs.heartbeat(self.id)

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush and end the run (idempotent)."""
        if self.ended:
            return
        self.ended = True
        _forget(self)  # first, so that the timer thread leaves the buffer alone
        try:
            self._buffer.close()
        except Exception as exc:
            status, error = "failed", f"could not write metrics: {exc}"
            raise
        finally:
            self.store.runs.finish(self.id, status, error)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", "interrupted")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} {self.id}>"


_stack: list[ActiveRun] = []
_stack_lock = threading.RLock()
_git_cache: dict[Path, tuple[float, str | None]] = {}


def _commit_of(project: Project) -> str | None:
    now = time.monotonic()
    hit = _git_cache.get(project.dir)
    if hit is not None and now - hit[0] < 5:
        return hit[1]
    info = git_info(project.dir)
    commit = None if info is None else info.commit + ("-dirty" if info.dirty else "")
    _git_cache[project.dir] = (now, commit)
    return commit


def start_run(
    name: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = False,
    parent_id: str | None = None,
    kind: str = "run",
    project: Project | None = None,
) -> ActiveRun:
    """Start a run and make it the active one.

    Args:
        name: Run name (default ``run-<time>``).
        params: Parameters to log at start.
        tags: Tags to set at start.
        nested: Start a child of the active run instead of refusing to.
        parent_id: Explicit parent run.
        kind: ``run`` for user code; ``trial`` and ``step`` are used by opsloop itself.
        project: Project to track into (default: the current project).
    """
    proj = project or current_project()
    with _stack_lock:
        if _stack and not nested and parent_id is None:
            raise TrackingError(
                f"run {_stack[-1].id} is already active",
                hint="end it first, or pass nested=True to start a child run",
            )
        if nested and parent_id is None and _stack:
            parent_id = _stack[-1].id
        info = proj.store.runs.create(
            name or time.strftime("run-%Y%m%d-%H%M%S"),
            kind=kind,
            parent_id=parent_id,
            project=proj.name,
            git_commit=_commit_of(proj),
            source=Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
            params=params,
            tags=tags,
            heartbeat=True,
        )
        run = ActiveRun(info, proj)
        _stack.append(run)
        _install_exit_hooks()
        _Ticker.ensure()
        return run


def _forget(run: ActiveRun) -> None:
    with _stack_lock:
        if run in _stack:
            _stack.remove(run)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def _step_run() -> ActiveRun | None:
    """Inside a pipeline step: a run of kind ``step`` under the pipeline run, made on first use.

    It is ended by a step-end hook in the worker, which is where the step's metrics are flushed.
    """
    worker = sys.modules.get("opsloop.pipeline.worker")
    if worker is None:
        return None
    task = worker.current_task()
    if task is None:
        return None
    run = start_run(task.step, kind="step", parent_id=task.run_id)
    worker.add_step_end_hook(_end_step_run)
    return run


def _end_step_run(task: Any, error: BaseException | None) -> None:
    with _stack_lock:
        runs = [r for r in _stack if r.info.kind == "step" and r.info.parent_id == task.run_id]
    for run in runs:
        if error is None:
            run.end("finished")
        else:
            run.end("failed", f"{type(error).__name__}: {error}")


def _require_run() -> ActiveRun:
    # No lock: reading the last item of a list is atomic, and this is on every metric call.
    run = _stack[-1] if _stack else None
    if run is None:
        run = _step_run()
    if run is None:
        raise TrackingError(
            "no active run", hint="wrap the code in 'with opsloop.start_run(): ...'"
        )
    return run


def end_run(status: str = "finished") -> None:
    """End the active run."""
    _require_run().end(status)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log a metric point to the active run."""
    _require_run().log_metric(key, value, step)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log several metrics to the active run."""
    _require_run().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    """Log one parameter to the active run."""
    _require_run().log_params({key: value})


def log_params(params: dict[str, Any]) -> None:
    """Log parameters to the active run."""
    _require_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run."""
    _require_run().set_tags({key: value})


def set_tags(tags: dict[str, Any]) -> None:
    """Set tags on the active run."""
    _require_run().set_tags(tags)


def log_artifact(path: str | Path, name: str | None = None) -> str:
    """Log a file or folder to the active run; returns its digest."""
    return _require_run().log_artifact(path, name)


# -- the timer: time-based flushes and heartbeats --------------------------------------------


class _Ticker:
    """One daemon thread per process that ticks every active run (see ``ActiveRun._tick``)."""

    _current: _Ticker | None = None

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-tracking", daemon=True)
        self._thread.start()

    @classmethod
    def ensure(cls) -> None:
        """Start the thread unless it runs."""
        with _stack_lock:
            if cls._current is None:
                cls._current = _Ticker()

    @classmethod
    def stop(cls) -> None:
        """Stop the thread (at exit, before the runs are ended)."""
        with _stack_lock:
            ticker, cls._current = cls._current, None
        if ticker is not None:
            ticker._stop.set()
            if ticker._thread is not threading.current_thread():
                ticker._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with _stack_lock:
                period = min((r.tick_s for r in _stack), default=1.0)
            if self._stop.wait(period):
                return
            with _stack_lock:
                runs = list(_stack)
            now = time.monotonic()
            for run in runs:
                try:
                    run._tick(now)
                except Exception as exc:
                    # The next tick or the run's end tries again; the thread must go on.
                    logger.debug("run %s: tick failed: %s", run.id, exc)


def _after_fork_in_child() -> None:
    # A forked child (a pipeline worker) has no timer thread, may have inherited a lock held
    # by one, and must not write its parent's runs: their points are the parent's to write.
    global _stack_lock
    _stack_lock = threading.RLock()
    _Ticker._current = None
    _stack.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- process exit --------------------------------------------------------------------------

_hooks_installed = False
_uncaught: BaseException | None = None
_previous_excepthook: Callable[..., Any] | None = None


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    global _uncaught
    _uncaught = exc
    if _previous_excepthook is not None:
        _previous_excepthook(exc_type, exc, tb)


def _end_all_at_exit() -> None:
    _Ticker.stop()
    with _stack_lock:
        runs = list(reversed(_stack))
    for run in runs:
        if _uncaught is not None:
            status, error = "failed", f"{type(_uncaught).__name__}: {_uncaught}"
        else:
            status, error = "finished", None
        try:
            run.end(status, error)
        except Exception as exc:
            print(f"opsloop: could not end run {run.id} at exit: {exc}", file=sys.stderr)


def _install_exit_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_end_all_at_exit)
