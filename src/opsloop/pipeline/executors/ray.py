"""The Ray executor: each step attempt is a Ray task on a cluster.

A task reserves the CPUs and memory its step declares (``@step(num_cpus=, memory=)``; one CPU
when it declares none). Ray reuses its worker processes across tasks (a new one costs
seconds), so the CPU time reported is the worker's during the step and the peak memory is
the worker's peak so far, an upper bound for the step, as under the inline executor; a
crash still fails only its step. Tasks are spread over the nodes (Ray's ``SPREAD`` strategy):
steps are coarse, and packing them onto the driver's node would leave the others idle.

Inputs and outputs travel through the artifact store named in the task, never through Ray's
object store or the driver's memory, so the cluster must share that store (S3, or a folder
every node mounts). Only the small :class:`~opsloop.pipeline.executors.base.StepResult`
(digests, timings, the log tail) comes back. Retries are the runner's, as with every
executor (the Ray task itself is never retried), so cache keys, lineage and step runs are
recorded exactly as under the local executor.

The worker finds the project from ``OPSLOOP_*`` variables the executor sends with each task:
the project folder, its store and artifact URLs and the ``OPSLOOP_*`` and ``AWS_*``
variables of the calling process. Step-end hooks added in the calling process are sent too
(pickled by Ray), so integrations that flush in the worker keep working.

Ray is imported when this module is, which the executor registry does only when the ``ray``
executor is chosen; without it a :class:`~opsloop.errors.MissingDependencyError` names the
``ray`` extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.context import current_project
from opsloop.errors import MissingDependencyError, OpsloopError, PipelineError
from opsloop.pipeline import worker
from opsloop.pipeline.executors.base import Executor, StepResult, StepTask
from opsloop.pipeline.executors.inline import peak_rss_bytes

try:
    import ray
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("ray", "ray") from _exc

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["NODE_LINE", "RayExecutor", "forwarded_env"]

NODE_LINE = "ray: step ran on node {node} (pid {pid})"
"""First line of every step's logs under this executor: where the step ran."""

FORWARDED_PREFIXES = ("OPSLOOP_", "AWS_")
"""Variables of the calling process sent with every task (settings and S3 credentials)."""


def forwarded_env(artifacts_url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a worker needs to act for the current project.

    ``OPSLOOP_*`` and ``AWS_*`` of ``environ`` (default: this process's), then the current
    project's folder and store URL, and the artifact store of the run.
    """
    env = {
        k: v
        for k, v in (os.environ if environ is None else environ).items()
        if k.startswith(FORWARDED_PREFIXES)
    }
    with contextlib.suppress(OpsloopError):
        project = current_project()
        env["OPSLOOP_PROJECT_DIR"] = str(project.dir)
        if project.settings.store_url:
            env["OPSLOOP_STORE_URL"] = project.settings.store_url
        endpoint = project.settings.s3_endpoint_url
        if endpoint:
            env["OPSLOOP_S3_ENDPOINT_URL"] = endpoint
            # The worker opens the task's artifact URL on its own; botocore reads this one.
            env.setdefault("AWS_ENDPOINT_URL", endpoint)
    env["OPSLOOP_ARTIFACT_URL"] = artifacts_url
    env["OPSLOOP_EXECUTOR"] = "ray"
    return env


@contextlib.contextmanager
def _output_to(path: str) -> Iterator[None]:
    """Send this process's stdout, stderr (file descriptors and Python streams) and logging
    records to ``path`` for a while; a Ray worker runs many tasks, so all is put back."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_logging = list(root.handlers), root.level
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    stream = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr = stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(worker.LOG_FORMAT))
    root.handlers = [handler]
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        stream.flush()
        root.handlers, level = saved_logging
        root.setLevel(level)
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        os.close(saved_fds[0])
        os.close(saved_fds[1])
        stream.close()


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_step(
    task: StepTask,
    hooks: tuple[worker.StepEndHook, ...],
    env: dict[str, str],
    path: list[str],
) -> StepResult:
    """The body of a step's Ray task, in a Ray worker process."""
    os.environ.update(env)
    for entry in reversed(path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    added = [h for h in hooks if h not in worker.step_end_hooks()]
    for hook in added:
        worker.add_step_end_hook(hook)
    fd, log_path = tempfile.mkstemp(prefix="opsloop-step-", suffix=".log")
    os.close(fd)
    cpu0 = _cpu_seconds()
    try:
        with _output_to(log_path):
            node = ray.get_runtime_context().get_node_id()
            print(NODE_LINE.format(node=node, pid=os.getpid()), flush=True)
            result = worker.execute_task(task)
    finally:
        for hook in added:
            worker.remove_step_end_hook(hook)
    cpu = _cpu_seconds() - cpu0
    peak = max(peak_rss_bytes(resource.RUSAGE_SELF), peak_rss_bytes(resource.RUSAGE_CHILDREN))
    logs = worker.read_log_tail(log_path, task.log_limit)
    with contextlib.suppress(OSError):
        os.unlink(log_path)
    return replace(result, logs=logs, cpu_seconds=cpu, peak_memory_bytes=peak)


# Never retried by Ray: the runner owns retries. Workers are reused across tasks, because
# starting a Ray worker process costs seconds where a step may take less.
_remote_step: Any = ray.remote(max_retries=0)(_run_step)


@dataclass
class _Pending:
    task: StepTask
    future: Future[StepResult]
    started_at: datetime
    ref: Any = None


_POLL_S = 0.5
"""Longest wait of the collector thread for a task to end before it looks again."""

_CANCEL_GRACE_S = 30.0
"""How long a cancelling shutdown waits for cancelled tasks to report before it gives up."""


class RayExecutor(Executor):
    """Runs each task as a Ray task, at most ``max_workers`` at once.

    A collector thread waits for the tasks in flight with ``ray.wait`` and settles their
    futures (rather than callbacks on Ray's own threads, which must not take the executor's
    lock); it runs while tasks are in flight.

    Args:
        max_workers: Tasks in flight at once (default: the cluster's CPUs when connecting).
        address: Cluster to connect to: ``auto`` (the one ``ray start`` made on this machine),
            ``ray://host:10001`` (Ray Client), or None for ``RAY_ADDRESS`` or else a new local
            cluster. A connection this process already has is used as it is.
        scheduling: Ray's scheduling strategy for step tasks (``SPREAD`` or ``DEFAULT``).
        namespace: Ray namespace of the job.
    """

    name = "ray"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | None = None,
        scheduling: str = "SPREAD",
        namespace: str = "opsloop",
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise PipelineError(f"max_workers must be at least 1, got {max_workers}")
        self._connected_here = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    namespace=namespace,
                    log_to_driver=False,
                    include_dashboard=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise PipelineError(
                    f"cannot connect to the Ray cluster at {address or 'RAY_ADDRESS'}: {exc}",
                    hint="start one with 'ray start --head', or pass --address",
                ) from exc
            self._connected_here = True
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self.max_workers = max_workers or max(1, cpus)
        self.scheduling = scheduling
        self._lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._running: dict[Any, _Pending] = {}
        self._closed = False
        self._collector: threading.Thread | None = None

    def submit(self, task: StepTask) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        with self._lock:
            if self._closed:
                raise PipelineError("the ray executor is shut down")
            self._queue.append(_Pending(task, future, datetime.now(UTC)))
            self._start_queued()
            if self._collector is None or not self._collector.is_alive():
                self._collector = threading.Thread(
                    target=self._collect, name="opsloop-ray-collector", daemon=True
                )
                self._collector.start()
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel:
                while self._queue:
                    self._queue.popleft().future.cancel()
                for ref in self._running:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
            waiting = [job.future for job in (*self._running.values(), *self._queue)]
        deadline = time.monotonic() + _CANCEL_GRACE_S if cancel else None
        for future in waiting:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(Exception):
                future.result(timeout=left)
        if cancel:
            # A cancelled task that never reports (its node gone) fails its step all the same.
            with self._lock:
                stuck = list(self._running.values())
                self._running.clear()
            for job in stuck:
                self._settle(job, self._crash(job, "it was cancelled and did not stop in time"))
        collector = self._collector
        if collector is not None and collector is not threading.current_thread():
            collector.join(timeout=_POLL_S * 4)
        if self._connected_here and ray.is_initialized():
            ray.shutdown()
            self._connected_here = False

    # -- internals (the lock guards _queue, _running, _closed) ----------------------------

    def _start_queued(self) -> None:
        while self._queue and len(self._running) < self.max_workers:
            job = self._queue.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue
            job.started_at = datetime.now(UTC)
            options: dict[str, Any] = {
                "num_cpus": 1.0 if job.task.num_cpus is None else job.task.num_cpus,
                "name": f"opsloop-step-{job.task.step}",
                "scheduling_strategy": self.scheduling,
            }
            if job.task.memory:
                options["memory"] = job.task.memory
            try:
                job.ref = _remote_step.options(**options).remote(
                    job.task,
                    worker.step_end_hooks(),
                    forwarded_env(job.task.artifacts_url),
                    [p for p in sys.path if p],
                )
            except Exception as exc:
                job.future.set_exception(
                    PipelineError(f"cannot submit step '{job.task.step}' to Ray: {exc}")
                )
                continue
            self._running[job.ref] = job

    def _collect(self) -> None:
        """Settle the futures of tasks that ended, until none is in flight."""
        while True:
            with self._lock:
                refs = list(self._running)
                if not refs:
                    self._collector = None
                    return
            try:
                ready, _ = ray.wait(refs, num_returns=1, timeout=_POLL_S)
                if ready:
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            except Exception:
                # Ray shut down under us: settle what is left as crashed.
                ready = refs
            for ref in ready:
                with self._lock:
                    job = self._running.pop(ref, None)
                if job is None:
                    continue
                try:
                    result: StepResult = ray.get(ref)
                except Exception as exc:
                    # The task did not report: its worker died, the node was lost, or it was
                    # cancelled. Ray's message names the cause.
                    message = str(exc).strip().splitlines()
                    first = message[0] if message else ""
                    result = self._crash(job, f"{type(exc).__name__}: {first}")
                self._settle(job, result)
            with self._lock:
                if not self._closed:
                    self._start_queued()

    @staticmethod
    def _crash(job: _Pending, why: str) -> StepResult:
        return StepResult.crash(
            job.task,
            job.started_at,
            f"the Ray task of step '{job.task.step}' failed before it reported a result ({why})",
        )

    @staticmethod
    def _settle(job: _Pending, result: StepResult) -> None:
        if not job.future.done():
            job.future.set_result(result)
