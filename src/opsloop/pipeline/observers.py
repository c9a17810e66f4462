"""Run observers: what the runner tells about a pipeline run while it happens.

The runner calls every observer at four moments: the run starts, a step starts, a step ends
(succeeded, cached, failed or skipped) and the run ends. It calls them from its own process,
whatever executor runs the steps, so an observer written once (OpenLineage events, for one)
works for every executor.

Observers must not slow or break the run: an observer that raises is logged as a warning and
the run goes on. Hooks take keyword-only arguments so that fields can be added later.

    from opsloop.pipeline import RunObserver, add_run_observer

    class Printer(RunObserver):
        def step_finished(self, *, run: RunView, step: StepView) -> None:
            print(step.name, step.status)

    add_run_observer(Printer())               # every run of this process
    run_pipeline(pipe, observers=[Printer()])  # one run
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from opsloop.artifacts import ArtifactStore
    from opsloop.context import Project

__all__ = [
    "InputRef",
    "RunObserver",
    "RunView",
    "StepView",
    "add_run_observer",
    "project_observers",
    "registered_run_observers",
    "remove_run_observer",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputRef:
    """Where one input of a step comes from: an output of an upstream step.

    Attributes:
        step: Node name of the step that produced it.
        output: Output name on that step.
        digest: The artifact digest of the value.
    """

    step: str
    output: str
    digest: str


@dataclass(frozen=True)
class RunView:
    """A pipeline run as observers see it.

    Attributes:
        run_id: Id of the run in the metadata store.
        pipeline: Pipeline name.
        params: Parameters of the run.
        time: When the run started (in ``run_started``) or ended (in ``run_finished``).
        status: ``running``, then ``finished``, ``failed`` or ``killed``.
        error: Why the run failed, if it did.
        artifacts: The artifact store the outputs are in.
        steps: Node names in topological order.
    """

    run_id: str
    pipeline: str
    params: dict[str, Any]
    time: datetime
    artifacts: ArtifactStore = field(repr=False, compare=False)
    status: str = "running"
    error: str | None = None
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepView:
    """One step of a run as observers see it.

    Attributes:
        name: Node name in the pipeline.
        status: ``running`` (in ``step_started``), then ``succeeded``, ``cached``, ``failed``
            or ``skipped``.
        time: When the step started, or ended.
        inputs: Where each artifact input comes from, by argument name.
        outputs: Artifact digest by output name (once it succeeded or was cached).
        params: Parameters of the step.
        attempts: Attempts made (0 when cached or skipped).
        error: Why it failed, if it did.
        traceback: The traceback of the failure, if any.
    """

    name: str
    status: str
    time: datetime
    inputs: dict[str, InputRef] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    traceback: str | None = None


class RunObserver:
    """Receives the moments of a pipeline run; override the hooks you need."""

    def run_started(self, *, run: RunView) -> None:
        """The run was recorded and is about to plan its first steps."""

    def step_started(self, *, run: RunView, step: StepView) -> None:
        """A step was submitted to the executor (once, not on retries)."""

    def step_finished(self, *, run: RunView, step: StepView) -> None:
        """A step ended: succeeded, cached (it never started), failed or skipped."""

    def run_finished(self, *, run: RunView) -> None:
        """The run ended; ``run.status`` says how."""

    def close(self) -> None:
        """Release what the observer holds (called once, after ``run_finished``)."""


_OBSERVERS: list[RunObserver] = []


def add_run_observer(observer: RunObserver) -> None:
    """Tell ``observer`` about every run of this process (adding it twice is a no-op)."""
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)


def remove_run_observer(observer: RunObserver) -> None:
    """Stop telling ``observer``."""
    if observer in _OBSERVERS:
        _OBSERVERS.remove(observer)


def registered_run_observers() -> list[RunObserver]:
    """The observers added with :func:`add_run_observer`."""
    return list(_OBSERVERS)


def project_observers(project: Project | None) -> list[RunObserver]:
    """The observers a project's ``opsloop.yaml`` asks for: the OpenLineage emitter of its
    ``lineage:`` section, when it names transports.

    A missing ``openlineage-python`` or a transport that cannot be set up is a warning, not
    an error: lineage never stops a run.
    """
    spec = project.spec if project is not None else None
    if project is None or spec is None or not spec.lineage.enabled:
        return []
    try:
        # Lazy import (noqa: PLC0415) of the OpenLineage client: only projects that emit
        # lineage load it, and it is an optional extra.
        from opsloop.pipeline.lineage import OpenLineageObserver  # noqa: PLC0415
    except ImportError as exc:
        log.warning(
            "opsloop.yaml asks for lineage events but %s; install them with "
            "pip install 'opsloop[lineage]'",
            exc,
        )
        return []
    try:
        observer = OpenLineageObserver.from_section(
            spec.lineage, namespace=project.name, base_dir=project.dir
        )
    except Exception as exc:
        log.warning("lineage events are off for this run: %s: %s", type(exc).__name__, exc)
        return []
    return [observer]


class ObserverSet:
    """Calls each observer in turn; one that raises is logged and the others still run.

    ``owned`` observers were made for this run and are closed when it ends; the others
    (added with :func:`add_run_observer`) live on.
    """

    def __init__(self, observers: Iterable[RunObserver], owned: Iterable[RunObserver] = ()) -> None:
        self.observers = list(observers)
        self.owned = list(owned)
        self.observers.extend(o for o in self.owned if o not in self.observers)

    def _call(self, hook: str, **kwargs: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, hook)(**kwargs)
            except Exception as exc:
                log.warning(
                    "run observer %s failed in %s: %s: %s",
                    type(observer).__name__,
                    hook,
                    type(exc).__name__,
                    exc,
                )

    def run_started(self, run: RunView) -> None:
        self._call("run_started", run=run)

    def step_started(self, run: RunView, step: StepView) -> None:
        self._call("step_started", run=run, step=step)

    def step_finished(self, run: RunView, step: StepView) -> None:
        self._call("step_finished", run=run, step=step)

    def run_finished(self, run: RunView) -> None:
        self._call("run_finished", run=run)
        for observer in self.owned:
            try:
                observer.close()
            except Exception as exc:
                log.warning("run observer %s failed to close: %s", type(observer).__name__, exc)
