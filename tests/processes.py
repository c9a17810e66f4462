"""Stopping the servers and services a test starts as subprocesses."""

from __future__ import annotations

import signal
import subprocess


def stop(
    proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGINT, timeout: float = 30
) -> str | None:
    """Stop ``proc`` with ``sig`` (Ctrl-C by default) and wait for it to end; its standard
    error (None when it was not piped). One that has not ended within ``timeout`` seconds is
    killed, and the test fails with :class:`subprocess.TimeoutExpired`: a server that does not
    stop when told is a bug, and must not outlive its test holding a port."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return err
