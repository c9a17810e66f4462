"""The inline executor: each step runs in the calling process, one after another.

For debugging (a breakpoint in a step just works) and fast tests. CPU time is the process's
CPU time during the step; peak memory is the process's peak so far, an upper bound for the
step. Only Python-level output is captured.
"""

from __future__ import annotations

import resource
import sys
import time
from concurrent.futures import Future
from dataclasses import replace

from opsloop.pipeline.executors.base import Executor, StepResult, StepTask
from opsloop.pipeline.worker import capture_python, execute_task

__all__ = ["InlineExecutor", "peak_rss_bytes"]


def peak_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    """Peak resident set size in bytes (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(who).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class InlineExecutor(Executor):
    """Runs each task synchronously inside :meth:`submit`."""

    name = "inline"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = 1

    def submit(self, task: StepTask) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        cpu0 = time.process_time()
        with capture_python(task.log_limit) as buf:
            result = execute_task(task)
        future.set_result(
            replace(
                result,
                logs=buf.getvalue(),
                cpu_seconds=time.process_time() - cpu0,
                peak_memory_bytes=peak_rss_bytes(),
            )
        )
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        return None
