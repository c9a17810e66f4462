"""The local executor: one worker process per step attempt, several at once.

A fresh process per attempt (forked on Linux, spawned elsewhere) costs a few milliseconds and
buys what a long-lived pool cannot: exact CPU time and peak memory of the step
(``getrusage`` in the worker), a crash (``os._exit``, a segfault, the OOM killer) that fails
only that step, and no state leaking from one step into the next. Results come back through
a pipe; the worker's stdout and stderr go to a file the parent reads, so the output of a
worker that died is kept too.

The standard ``ProcessPoolExecutor`` is not used because one dying worker breaks the whole
pool (every pending future fails) and its workers outlive a task, which hides per-step
resource use.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import resource
import signal
import sys
import tempfile
import threading
import warnings
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from opsloop.errors import PipelineError
from opsloop.pipeline.executors.base import Executor, StepResult, StepTask
from opsloop.pipeline.executors.inline import peak_rss_bytes
from opsloop.pipeline.worker import execute_task, read_log_tail, redirect_process_output

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

__all__ = ["LocalExecutor", "default_start_method"]


def default_start_method() -> str:
    """``fork`` on Linux (cheap, no re-import of the user's code), else ``spawn``."""
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return "fork"
    return "spawn"


def _child_main(task: StepTask, conn: Connection, log_path: str) -> None:
    redirect_process_output(log_path)
    result = execute_task(task)
    sys.stdout.flush()
    sys.stderr.flush()
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    peak = max(peak_rss_bytes(resource.RUSAGE_SELF), peak_rss_bytes(resource.RUSAGE_CHILDREN))
    conn.send(replace(result, cpu_seconds=cpu, peak_memory_bytes=peak))
    conn.close()


@dataclass
class _Job:
    task: StepTask
    future: Future[StepResult]
    process: BaseProcess
    conn: Connection
    log_path: str
    started_at: datetime
    result: StepResult | None = None
    conn_open: bool = True


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class LocalExecutor(Executor):
    """Runs each task in its own worker process, at most ``max_workers`` at once.

    Args:
        max_workers: Worker processes at once (default: the CPU count).
        start_method: ``fork`` or ``spawn`` (default: :func:`default_start_method`).
    """

    name = "local"

    def __init__(self, max_workers: int | None = None, *, start_method: str | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise PipelineError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.start_method = start_method or default_start_method()
        self._ctx = mp.get_context(self.start_method)
        self._lock = threading.Lock()
        self._queue: deque[tuple[StepTask, Future[StepResult]]] = deque()
        self._jobs: dict[int, _Job] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, task: StepTask) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        with self._lock:
            if self._closed:
                raise PipelineError("the local executor is shut down")
            self._queue.append((task, future))
            self._start_queued()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._monitor, name="opsloop-local-executor", daemon=True
                )
                self._thread.start()
        self._wake()
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel:
                while self._queue:
                    self._queue.popleft()[1].cancel()
                for job in self._jobs.values():
                    job.process.terminate()
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- internals (the lock guards _queue, _jobs, _closed) ------------------------------

    def _wake(self) -> None:
        # A full pipe already holds a wake-up; a closed one means shut down.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _start_queued(self) -> None:
        """Start queued tasks while workers are free."""
        while self._queue and len(self._jobs) < self.max_workers:
            task, future = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._start(task, future)
            except OSError as exc:
                future.set_exception(
                    PipelineError(f"cannot start a worker for step '{task.step}': {exc}")
                )

    def _start(self, task: StepTask, future: Future[StepResult]) -> None:
        fd, log_path = tempfile.mkstemp(prefix="opsloop-step-", suffix=".log")
        os.close(fd)
        reader, writer = self._ctx.Pipe(duplex=False)
        # Not a daemon: a step may start processes of its own (joblib, multiprocessing).
        process: BaseProcess = self._ctx.Process(  # type: ignore[attr-defined]
            target=_child_main,
            args=(task, writer, log_path),
            name=f"opsloop-step-{task.step}",
        )
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            # Python 3.12+ warns when forking a process that has threads. The only other
            # threads here are this executor's monitor, which holds no lock the worker uses,
            # and the worker opens fresh stdio streams.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
            process.start()
        writer.close()
        self._jobs[process.sentinel] = _Job(
            task, future, process, reader, log_path, datetime.now(UTC)
        )

    def _monitor(self) -> None:
        while True:
            with self._lock:
                if self._closed and not self._jobs and not self._queue:
                    return
                waitables: list[Any] = [self._wake_r]
                by_conn: dict[int, _Job] = {}
                for sentinel, job in self._jobs.items():
                    waitables.append(sentinel)
                    if job.conn_open:
                        waitables.append(job.conn)
                        by_conn[id(job.conn)] = job
            ready = mpc.wait(waitables)
            finished: list[_Job] = []
            for obj in ready:
                if isinstance(obj, Connection):
                    job = by_conn[id(obj)]
                    self._receive(job)
                elif obj == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif isinstance(obj, int):
                    with self._lock:
                        done = self._jobs.pop(obj, None)
                    if done is not None:
                        finished.append(done)
            for job in finished:
                self._finish(job)

    def _receive(self, job: _Job) -> None:
        with contextlib.suppress(EOFError, OSError):
            job.result = job.conn.recv()
        job.conn_open = False

    def _finish(self, job: _Job) -> None:
        job.process.join()
        if job.conn_open and job.conn.poll():
            self._receive(job)
        job.conn.close()
        exitcode = job.process.exitcode
        job.process.close()
        logs = read_log_tail(job.log_path, job.task.log_limit)
        with contextlib.suppress(OSError):
            os.unlink(job.log_path)
        result = job.result
        if result is None:
            result = StepResult.crash(
                job.task,
                job.started_at,
                f"the worker process of step '{job.task.step}' died "
                f"({_death(exitcode)}) before it reported a result",
            )
        result = replace(result, logs=logs)
        with self._lock:
            self._start_queued()
        if not job.future.done():
            job.future.set_result(result)
