"""Whether the process that writes a run is still alive.

A run records the host, pid and start time of the process that writes it. On the same host
the process table answers for sure: a pid that is gone, a zombie, or a pid now held by a
process that started at another time (the pid was reused) means the writer is dead. On
another host only the heartbeat can tell, so a run whose heartbeat is older than a timeout is
taken to be dead there.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import psutil

# psutil derives a start time from clock ticks since boot; allow for rounding.
_START_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessIdentity:
    """Who writes a run: a pid alone is reused, a pid with its start time is not."""

    host: str
    pid: int
    started: float | None

    def as_dict(self) -> dict[str, str | int | float | None]:
        """JSON-ready, for records that name their writer."""
        return {"host": self.host, "pid": self.pid, "started": self.started}


_identity: ProcessIdentity | None = None


def this_process() -> ProcessIdentity:
    """The identity of the calling process (cached, and renewed after a fork)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity.pid != pid:
        try:
            started: float | None = psutil.Process(pid).create_time()
        except psutil.Error:
            started = None
        _identity = ProcessIdentity(socket.gethostname(), pid, started)
    return _identity


def gone_reason(
    host: str | None,
    pid: int | None,
    started: float | None,
    heartbeat_at: datetime | None,
    now: datetime,
    timeout_s: float,
) -> str | None:
    """Why the writer of a running run is dead, or None while it may be alive.

    Args:
        host: Host the writer ran on.
        pid: Its process id there.
        started: Its start time (epoch seconds), to tell a reused pid apart.
        heartbeat_at: When it last said it was alive; None if it never does.
        now: The current time.
        timeout_s: How old a heartbeat may be before a writer on another host counts as dead.
    """
    me = this_process()
    if host is not None and pid is not None and host == me.host:
        if pid == me.pid:
            return None
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return f"process {pid} on {host} has exited"
                now_started = proc.create_time()
        except psutil.NoSuchProcess:
            return f"process {pid} on {host} is gone"
        except psutil.AccessDenied:
            now_started = None
        if now_started is not None:
            if started is not None and abs(now_started - started) > _START_TOLERANCE_S:
                return f"process {pid} on {host} is gone (the pid now belongs to another process)"
            return None
    if heartbeat_at is not None and now - heartbeat_at > timedelta(seconds=timeout_s):
        age = (now - heartbeat_at).total_seconds()
        who = f"process {pid} on {host}" if host is not None else "its process"
        return f"no heartbeat from {who} for {age:.0f} s (timeout {timeout_s:g} s)"
    return None
