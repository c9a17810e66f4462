"""Run a pipeline: plan the DAG, reuse cached steps, execute the rest, record everything.

The runner is the only part that writes to the metadata store: the pipeline run (a run of
kind ``pipeline`` with its parameters), one step run per DAG node created ``pending`` up
front, and every change of a step run after that. Workers only read and write artifacts.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.errors import NotFoundError, OpsloopError, PipelineError, StepFailedError
from opsloop.gitutil import git_info
from opsloop.pipeline.cache import cache_key
from opsloop.pipeline.executors import DEFAULT_LOG_LIMIT, Executor, get_executor
from opsloop.pipeline.executors.base import StepResult, StepTask
from opsloop.pipeline.materializers import load_value, materializer_versions
from opsloop.pipeline.observers import (
    InputRef,
    ObserverSet,
    RunObserver,
    RunView,
    StepView,
    project_observers,
    registered_run_observers,
)
from opsloop.pipeline.progress import RunDisplay
from opsloop.pipeline.step import Pipeline
from opsloop.store.types import StepRunInfo, UsageRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.artifacts import ArtifactStore
    from opsloop.context import Project
    from opsloop.gitutil import GitInfo
    from opsloop.pipeline.dag import Dag
    from opsloop.store import Store

__all__ = ["PipelineRunResult", "StepOutcome", "load_output", "run_pipeline"]

_OK = ("succeeded", "cached")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StepOutcome:
    """How one step of a run ended: a view over its recorded step run."""

    info: StepRunInfo

    @property
    def name(self) -> str:
        """Node name of the step in the pipeline."""
        return self.info.name

    @property
    def status(self) -> str:
        """pending, running, succeeded, failed, skipped or cached."""
        return self.info.status

    @property
    def cached(self) -> bool:
        """Whether an earlier execution was reused."""
        return self.info.status == "cached"

    @property
    def outputs(self) -> dict[str, str]:
        """Artifact digest by output name."""
        return {k: str(v) for k, v in self.info.outputs.items()}

    @property
    def step_run_id(self) -> int:
        """Id of the step run in the metadata store."""
        return self.info.id


@dataclass(frozen=True)
class PipelineRunResult:
    """A finished pipeline run.

    Attributes:
        run_id: Id of the run in the metadata store.
        pipeline: Pipeline name.
        status: ``finished``, ``failed`` or ``killed``.
        steps: Outcome by step (node) name, in topological order.
        error: Why the run failed, if it did.
        artifacts: The artifact store holding the outputs.
    """

    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepOutcome]
    error: str | None = None
    artifacts: ArtifactStore | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        """Whether every step succeeded or was cached."""
        return self.status == "finished"

    @property
    def cached_steps(self) -> list[str]:
        """Steps whose earlier execution was reused."""
        return [n for n, s in self.steps.items() if s.cached]

    @property
    def failed_steps(self) -> list[str]:
        """Steps that failed."""
        return [n for n, s in self.steps.items() if s.status == "failed"]

    def output_digest(self, step: str, output: str = "output") -> str:
        """The artifact digest of one output of one step."""
        return _digest_of(self._outcome(step).info, output)

    def _outcome(self, step: str) -> StepOutcome:
        try:
            return self.steps[step]
        except KeyError:
            raise NotFoundError(
                f"pipeline run {self.run_id} has no step '{step}'; "
                f"its steps: {', '.join(self.steps)}"
            ) from None

    def raise_for_status(self) -> PipelineRunResult:
        """Return self if the run finished; else raise StepFailedError for the first failure."""
        if self.status == "finished":
            return self
        for outcome in self.steps.values():
            if outcome.status == "failed":
                raise StepFailedError(
                    outcome.name, outcome.info.error or "failed", outcome.info.traceback or ""
                )
        raise PipelineError(f"pipeline run {self.run_id} ended {self.status}: {self.error}")


def _digest_of(info: StepRunInfo, output: str) -> str:
    if info.status not in _OK:
        raise PipelineError(
            f"step '{info.name}' of run {info.run_id} has no outputs: it is {info.status}"
        )
    digest = info.outputs.get(output)
    if digest is None:
        raise NotFoundError(
            f"step '{info.name}' has no output '{output}'; its outputs: "
            f"{', '.join(info.outputs) or '(none)'}"
        )
    return str(digest)


def _project_stores(
    store: Store | None, artifacts: ArtifactStore | None
) -> tuple[Store, ArtifactStore, Any]:
    project: Any = None
    if store is None or artifacts is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where it
        # is used, so importing this module stays light.
        from opsloop.context import current_project  # noqa: PLC0415

        project = current_project()
        store = store if store is not None else project.store
        artifacts = artifacts if artifacts is not None else project.artifacts
    return store, artifacts, project


def load_output(
    source: PipelineRunResult | StepRunInfo | StepOutcome | str,
    step_name: str | None = None,
    output: str = "output",
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
) -> Any:
    """Load an output of a step back into Python.

    Args:
        source: A run result, a step run (``StepRunInfo`` or ``StepOutcome``), or a run id.
        step_name: The step, when ``source`` is a run result or run id.
        output: Output name (``output`` for single-output steps).
        store: Metadata store to look a run id up in (default: the current project's).
        artifacts: Artifact store (default: the result's, else the current project's).

    Raises:
        NotFoundError: No such run, step or output.
        PipelineError: The step did not succeed.
    """
    if isinstance(source, StepOutcome):
        source = source.info
    if isinstance(source, PipelineRunResult):
        if step_name is None:
            raise PipelineError("load_output(result, ...) needs the step name")
        info = source._outcome(step_name).info
        artifacts = artifacts or source.artifacts
    elif isinstance(source, StepRunInfo):
        if step_name is not None and step_name != source.name:
            raise PipelineError(f"step run {source.id} is step '{source.name}', not '{step_name}'")
        info = source
    else:
        if step_name is None:
            raise PipelineError("load_output(run_id, ...) needs the step name")
        if store is None:
            from opsloop.context import current_project  # noqa: PLC0415

            # A lookup: outside a project it must not create an empty store to look in.
            current_project().require_state(f"load_output({source!r})")
            store, _, _ = _project_stores(None, artifacts)
        runs = {s.name: s for s in store.steps.list(store.runs.get(source).id)}
        if step_name not in runs:
            raise NotFoundError(
                f"pipeline run {source} has no step '{step_name}'; its steps: "
                f"{', '.join(runs) or '(none)'}"
            )
        info = runs[step_name]
    digest = _digest_of(info, output)
    if artifacts is None:
        _, artifacts, _ = _project_stores(store, None)
    return load_value(digest, artifacts)


def run_pipeline(
    pipeline_obj: Pipeline,
    params: dict[str, Any] | None = None,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
    executor: str | Executor = "local",
    no_cache: bool = False,
    max_workers: int | None = None,
    progress: bool = True,
    tags: dict[str, Any] | None = None,
    log_limit: int = DEFAULT_LOG_LIMIT,
    observers: Sequence[RunObserver] = (),
) -> PipelineRunResult:
    """Run a pipeline and record it (a run of kind ``pipeline``) with every step run.

    A failing step does not raise: its dependents are skipped, independent steps still run,
    and the result says ``failed`` (see :meth:`PipelineRunResult.raise_for_status`).

    Args:
        pipeline_obj: The ``@pipeline`` to run.
        params: Pipeline parameters; strings are coerced by the function's annotations.
        store: Metadata store (default: the current project's).
        artifacts: Artifact store for step outputs (default: the current project's).
        executor: Executor name (``local``, ``inline`` …) or instance (left open).
        no_cache: Run every step even if an unchanged earlier execution exists.
        max_workers: Steps run at once by the local executor (default: CPU count).
        progress: Show a live line per step.
        tags: Tags of the run.
        log_limit: Bytes of captured output kept per step execution.
        observers: Told about this run as it happens (see :mod:`opsloop.pipeline.observers`),
            besides those added with ``add_run_observer`` and the project's OpenLineage
            emitter (the ``lineage:`` section of ``opsloop.yaml``).

    Raises:
        PipelineError: The pipeline cannot be built (bad parameters, bad step calls).
    """
    if not isinstance(pipeline_obj, Pipeline):
        raise PipelineError(f"{pipeline_obj!r} is not a pipeline: decorate it with @pipeline")
    store, artifacts, project = _project_stores(store, artifacts)
    values = pipeline_obj.coerce_params(params or {})
    dag = pipeline_obj.build(values)
    own_executor = not isinstance(executor, Executor)
    exe = get_executor(executor, max_workers=max_workers) if isinstance(executor, str) else executor

    git = _project_git(project)
    run_tags: dict[str, Any] = {"opsloop.executor": exe.name, **(tags or {})}
    if no_cache:
        run_tags["opsloop.no_cache"] = "true"
    if git is not None and git.dirty:
        run_tags["opsloop.git_dirty"] = "true"
    run = store.runs.create(
        pipeline_obj.name,
        kind="pipeline",
        params=values,
        tags=run_tags,
        git_commit=git.commit if git is not None else None,
        source=pipeline_obj.source,
        project=project.name if project is not None else "",
    )
    runner = _Runner(
        dag,
        run.id,
        store,
        artifacts,
        exe,
        no_cache=no_cache,
        progress=progress,
        log_limit=log_limit,
        charge=_charge_to(project),
        observers=ObserverSet(
            [*registered_run_observers(), *observers],
            owned=project_observers(_owning_project(project, store)),
        ),
        params=values,
    )
    try:
        return runner.run()
    finally:
        if own_executor:
            exe.shutdown(cancel=True)


def _charge_to(project: Project | None) -> dict[str, str]:
    """The usage dimensions every step of a run carries: the project and whom it is charged
    to (``finops.team`` and ``finops.cost_centre`` of ``opsloop.yaml``)."""
    if project is None:
        return {}
    spec = project.spec
    if spec is None:
        return {"project": project.name}
    return {
        "project": project.name,
        "team": spec.finops.team,
        "cost_centre": spec.finops.cost_centre,
    }


def _owning_project(project: Project | None, store: Store) -> Project | None:
    """The project whose ``opsloop.yaml`` applies to the run: the one the stores came from,
    or, when the caller passed the stores, the current project if ``store`` is its own."""
    if project is not None:
        return project
    from opsloop.context import current_project  # noqa: PLC0415

    try:
        current = current_project()
    except OpsloopError:
        return None
    return current if current.holds(store) else None


def _project_git(project: Project | None) -> GitInfo | None:
    """The commit and dirty state of the project the run belongs to, or None.

    The project's folder, not the pipeline's source file: the lifecycle's steps live in the
    installed opsloop package, whose repository (if any) says nothing about the project.
    """

    if project is None:
        from opsloop.context import current_project  # noqa: PLC0415

        try:
            project = current_project()
        except OpsloopError:
            return None
    return git_info(project.dir)


class _Runner:
    def __init__(
        self,
        dag: Dag,
        run_id: str,
        store: Store,
        artifacts: ArtifactStore,
        executor: Executor,
        *,
        no_cache: bool,
        progress: bool,
        log_limit: int,
        charge: dict[str, str] | None = None,
        observers: ObserverSet | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.dag = dag
        self.observers = observers or ObserverSet(())
        self.params = dict(params or {})
        self.charge = {k: v for k, v in (charge or {}).items() if v}
        self.run_id = run_id
        self.store = store
        self.artifacts = artifacts
        self.executor = executor
        self.no_cache = no_cache
        self.log_limit = log_limit
        self.order = dag.order()
        self.display = RunDisplay(dag.pipeline, self.order, enabled=progress, run_id=run_id)
        self.materializers = materializer_versions()
        self.status: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.outputs: dict[str, dict[str, str]] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self.keys: dict[str, str | None] = {}
        self.attempts: dict[str, int] = {}
        self.logs: dict[str, list[str]] = {}
        self.cpu: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self.started: dict[str, datetime] = {}
        self.inflight: dict[cf.Future[StepResult], str] = {}
        self.first_error: str | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> PipelineRunResult:
        try:
            with self.display:
                for name in self.order:
                    node = self.dag.nodes[name]
                    info = self.store.steps.create(self.run_id, name, params=node.params)
                    self.ids[name] = info.id
                    self.status[name] = "pending"
                self.observers.run_started(self._view())
                self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        failed = [n for n in self.order if self.status[n] == "failed"]
        status = "failed" if failed else "finished"
        self.store.runs.finish(self.run_id, status, self.first_error)
        self.observers.run_finished(self._view(status, self.first_error))
        infos = {s.name: s for s in self.store.steps.list(self.run_id)}
        return PipelineRunResult(
            run_id=self.run_id,
            pipeline=self.dag.pipeline,
            status=status,
            steps={n: StepOutcome(infos[n]) for n in self.order},
            error=self.first_error,
            artifacts=self.artifacts,
        )

    def _loop(self) -> None:
        while True:
            progressed = True
            while progressed:
                progressed = False
                for name in self.order:
                    if self.status[name] == "pending" and all(
                        self.status[u] in _OK for u in self.dag.nodes[name].upstream
                    ):
                        self._start(name)
                        progressed = True
            if not self.inflight:
                break
            timeout = 0.1 if self.display.enabled else None
            done, _ = cf.wait(self.inflight, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            for future in done:
                self._finish(self.inflight.pop(future), future)
            self.display.refresh()
        for name in self.order:
            if self.status[name] == "pending":
                self._set(name, "skipped", note="an upstream step did not succeed")

    def _set(self, name: str, status: str, note: str = "", **fields: Any) -> None:
        self.status[name] = status
        self.store.steps.update(self.ids[name], status=status, **fields)
        self.display.update(name, status, note)
        step = self._step_view(name, status, fields)
        if status == "running":
            self.observers.step_started(self._view(), step)
        else:
            self.observers.step_finished(self._view(), step)

    def _view(self, status: str = "running", error: str | None = None) -> RunView:
        return RunView(
            run_id=self.run_id,
            pipeline=self.dag.pipeline,
            params=self.params,
            time=_utcnow(),
            artifacts=self.artifacts,
            status=status,
            error=error,
            steps=tuple(self.order),
        )

    def _step_view(self, name: str, status: str, fields: dict[str, Any]) -> StepView:
        node = self.dag.nodes[name]
        inputs = {
            arg: InputRef(ref.node, ref.output, self.outputs[ref.node][ref.output])
            for arg, ref in node.inputs.items()
            if ref.output in self.outputs.get(ref.node, {})
        }
        return StepView(
            name=name,
            status=status,
            time=fields.get("ended_at") or fields.get("started_at") or _utcnow(),
            inputs=inputs,
            outputs=dict(self.outputs.get(name, {})) if status in _OK else {},
            params=dict(node.params),
            attempts=int(fields.get("attempts", self.attempts.get(name, 0))),
            error=fields.get("error"),
            traceback=fields.get("traceback"),
        )

    def _start(self, name: str) -> None:
        node = self.dag.nodes[name]
        step = node.step
        inputs = {arg: self.outputs[ref.node][ref.output] for arg, ref in node.inputs.items()}
        self.inputs[name] = inputs
        key = cache_key(
            source=step.source_digest,
            params=node.params,
            inputs=inputs,
            outputs=step.outputs,
            materializers=self.materializers,
        )
        # A step that must not be reused records no key, so no later run can find it.
        self.keys[name] = key if step.cache else None
        if step.cache and not self.no_cache:
            hit = self.store.steps.find_cached(key)
            if hit is not None and all(
                out in hit.outputs and self.artifacts.exists(str(hit.outputs[out]))
                for out in step.outputs
            ):
                now = _utcnow()
                self.outputs[name] = {out: str(hit.outputs[out]) for out in step.outputs}
                self._set(
                    name,
                    "cached",
                    note=f"from step run {hit.id}",
                    cache_key=key,
                    cached_from=hit.id,
                    inputs=inputs,
                    outputs=self.outputs[name],
                    attempts=0,
                    started_at=now,
                    ended_at=now,
                )
                return
        self.attempts[name] = 1
        self.started[name] = _utcnow()
        self._set(
            name,
            "running",
            cache_key=self.keys[name],
            inputs=inputs,
            attempts=1,
            started_at=self.started[name],
        )
        self._submit(name)

    def _submit(self, name: str) -> None:
        node = self.dag.nodes[name]
        step = node.step
        task = StepTask(
            run_id=self.run_id,
            step=name,
            module=step.module,
            qualname=step.qualname,
            source_digest=step.source_digest,
            params=node.params,
            inputs=self.inputs[name],
            outputs=step.outputs,
            artifacts_url=self.artifacts.url,
            attempt=self.attempts[name],
            module_file=step.source_file,
            log_limit=self.log_limit,
            num_cpus=step.num_cpus,
            memory=step.memory,
        )
        self.inflight[self.executor.submit(task)] = name

    def _collect(self, name: str, result: StepResult) -> str:
        attempt = self.attempts[name]
        chunks = self.logs.setdefault(name, [])
        if attempt > 1 or not result.ok:
            chunks.append(f"----- attempt {attempt} -----\n")
        chunks.append(result.logs)
        if result.cpu_seconds is not None:
            self.cpu[name] = self.cpu.get(name, 0.0) + result.cpu_seconds
        if result.peak_memory_bytes is not None:
            self.peak[name] = max(self.peak.get(name, 0), result.peak_memory_bytes)
        text = "".join(chunks)
        if len(text) > self.log_limit:
            dropped = len(text) - self.log_limit
            text = f"[... {dropped} characters dropped ...]\n{text[-self.log_limit :]}"
            self.logs[name] = [text]
        return text

    def _finish(self, name: str, future: cf.Future[StepResult]) -> None:
        try:
            result = future.result()
        except Exception as exc:
            result = StepResult(
                step=name,
                attempt=self.attempts[name],
                ok=False,
                ended_at=_utcnow(),
                error=f"executor '{self.executor.name}' failed: {type(exc).__name__}: {exc}",
            )
        logs = self._collect(name, result)
        usage: dict[str, Any] = {
            "cpu_seconds": self.cpu.get(name),
            "peak_memory_bytes": self.peak.get(name),
            "logs": logs,
            "attempts": self.attempts[name],
        }
        if result.ok:
            self.outputs[name] = dict(result.outputs)
            ended = result.ended_at or _utcnow()
            self._set(
                name,
                "succeeded",
                outputs=self.outputs[name],
                ended_at=ended,
                error=None,
                traceback=None,
                **usage,
            )
            self._meter(name, ended)
            return
        step = self.dag.nodes[name].step
        if self.attempts[name] <= step.retries:
            self.attempts[name] += 1
            self.status[name] = "running"
            self.store.steps.update(
                self.ids[name],
                attempts=self.attempts[name],
                error=result.error,
                traceback=result.traceback,
                **{k: v for k, v in usage.items() if k != "attempts"},
            )
            self.display.update(
                name, "retrying", f"attempt {self.attempts[name]} of {step.retries + 1}"
            )
            self._submit(name)
            return
        error = result.error or "failed"
        if self.first_error is None:
            self.first_error = f"step '{name}' failed: {error}"
        ended = result.ended_at or _utcnow()
        self._set(
            name,
            "failed",
            note=error.splitlines()[0][:80] if error else "",
            ended_at=ended,
            error=error,
            traceback=result.traceback,
            **usage,
        )
        self._meter(name, ended)
        below = self.dag.descendants(name)
        for child in self.order:
            if child in below and self.status[child] == "pending":
                self._set(child, "skipped", note=f"'{name}' failed")

    def _meter(self, name: str, ended: datetime) -> None:
        """One usage record for a step that ran (every attempt, failed ones too: they cost
        the same), charged to the hour it ended in (FinOps)."""
        started = self.started.get(name, ended)
        wall = max((ended - started).total_seconds(), 0.0)
        peak_gb = self.peak.get(name, 0) / 2**30
        dims = {**self.charge, "run": self.run_id, "step": name}
        quantities = {
            "wall_s": wall,
            "cpu_s": self.cpu.get(name, 0.0),
            "memory_gb_s": peak_gb * wall,
        }
        self.store.usage.add([UsageRecord(ended, "step", dims, quantities)])

    def _abort(self, exc: BaseException) -> None:
        """Stop what runs, and leave a store that says what happened."""
        with contextlib.suppress(Exception):
            self.executor.shutdown(cancel=True)
        reason = f"interrupted: {type(exc).__name__}: {exc}".rstrip(": ")
        for name in self.order:
            status = self.status.get(name)
            with contextlib.suppress(Exception):
                if status == "running":
                    self.store.steps.update(
                        self.ids[name], status="failed", error=reason, ended_at=_utcnow()
                    )
                elif status == "pending":
                    self.store.steps.update(self.ids[name], status="skipped")
        end = "killed" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
        with contextlib.suppress(Exception):
            self.store.runs.finish(self.run_id, end, reason)
        self.observers.run_finished(self._view(end, reason))
