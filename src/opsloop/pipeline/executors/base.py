"""The executor contract.

An executor runs :class:`StepTask` s and hands back :class:`StepResult` s through
``concurrent.futures.Future`` objects. Both are plain picklable data: the step is named by
module and qualname, its inputs by artifact digest and the artifact store by URL, so a task
can run in another process or, through a plugin executor, on another machine. Workers only
write artifacts; the runner records everything in the metadata store.

A step that raises is a *result* (``ok=False``), not a failed future; the future fails only
when the executor itself breaks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from concurrent.futures import Future
    from types import TracebackType

__all__ = ["DEFAULT_LOG_LIMIT", "Executor", "StepResult", "StepTask"]

DEFAULT_LOG_LIMIT = 1 << 20
"""Bytes of captured output kept per step execution (the tail)."""


@dataclass(frozen=True)
class StepTask:
    """One execution attempt of a step, self-contained.

    Attributes:
        run_id: The pipeline run.
        step: Node name in the pipeline (for messages and logs).
        module: Module that defines the step.
        qualname: Qualified name of the step in its module.
        source_digest: The step's source digest as the runner saw it; a worker whose code
            differs refuses to run.
        params: Parameters (JSON values) by argument name.
        inputs: Artifact digest by argument name.
        outputs: Output names, in order.
        artifacts_url: URL of the artifact store to read inputs from and write outputs to.
        attempt: 1 for the first try, 2 for the first retry …
        module_file: File of the module, to import it by path when its name is not importable.
        log_limit: Bytes of captured output to keep.
        num_cpus: CPUs the step declared (``@step(num_cpus=)``), for executors that
            schedule by resources; None when it declared none.
        memory: Bytes of memory the step declared (``@step(memory=)``), likewise.
    """

    run_id: str
    step: str
    module: str
    qualname: str
    source_digest: str
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: tuple[str, ...]
    artifacts_url: str
    attempt: int = 1
    module_file: str | None = None
    log_limit: int = DEFAULT_LOG_LIMIT
    num_cpus: float | None = None
    memory: int | None = None


@dataclass(frozen=True)
class StepResult:
    """What one execution attempt produced.

    Attributes:
        step: Node name.
        attempt: The attempt number of the task.
        ok: Whether the step returned and every output was stored.
        outputs: Artifact digest by output name (empty unless ``ok``).
        started_at: When the step function was called (UTC).
        ended_at: When it returned or raised (UTC).
        cpu_seconds: CPU time of the process that ran it (user + system, with its children).
        peak_memory_bytes: Peak resident memory of that process.
        logs: Captured stdout, stderr and logging records (the tail, bounded).
        error: ``ExceptionType: message`` when not ``ok``.
        traceback: The formatted traceback when not ``ok``.
        crashed: The worker died without reporting (killed, segfault, ``os._exit``).
    """

    step: str
    attempt: int
    ok: bool
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    logs: str = ""
    error: str | None = None
    traceback: str | None = None
    crashed: bool = False

    @classmethod
    def crash(cls, task: StepTask, started_at: datetime | None, error: str) -> Self:
        """The result of an attempt whose worker died before it reported, ended now."""
        return cls(
            step=task.step,
            attempt=task.attempt,
            ok=False,
            started_at=started_at,
            ended_at=datetime.now(UTC),
            error=error,
            crashed=True,
        )


class Executor(ABC):
    """Runs step tasks; at most ``max_workers`` at once."""

    name: ClassVar[str]
    max_workers: int

    @abstractmethod
    def submit(self, task: StepTask) -> Future[StepResult]:
        """Start (or queue) ``task`` and return a future of its result."""

    @abstractmethod
    def shutdown(self, *, cancel: bool = False) -> None:
        """Release workers; with ``cancel``, stop running tasks and drop queued ones."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(cancel=exc_type is not None)
