"""Run the lifecycle declared in ``opsloop.yaml``: check the spec, run the phases, record."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from opsloop.context import Project, use_project
from opsloop.errors import ConfigError, DataError, MLError, NotFoundError, SpecError
from opsloop.spec.loader import SPEC_FILE
from opsloop.spec.yamlpos import line_for, load_yaml, load_yaml_with_lines, read_text

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pandas as pd

    from opsloop.pipeline.executors import Executor
    from opsloop.spec.finops import FinopsSection
    from opsloop.store import Store

PHASES = (
    "ingest",
    "validate",
    "contract_gate",
    "split",
    "featurize",
    "train",
    "evaluate",
    "gate",
    "register",
)

# A parameter value comes from one command-line argument: far below a spec file's limit.
_MAX_PARAM_CHARS = 64 * 1024

MIN_RECENT_ROWS = 30
"""Fewest recent labelled rows worth comparing the candidate and the champion on: fewer give
a metric too noisy to judge by."""


@dataclass
class LifecycleOutcome:
    """What a lifecycle run did, for the summary and for callers.

    Attributes:
        run_id: The pipeline run.
        status: ``finished`` or ``failed``.
        steps: Status of each phase (``succeeded``, ``cached``, ``failed``, ``skipped``).
        error: The failed phase's error, if any.
        outputs: Loaded JSON outputs of the phases that produced them.
        report_path: Local copy of the evaluation report (HTML), when there is one.
        reports: Every file of the evaluation report folder (the HTML page and its plots).
        notes: What the run used or left out, for the summary (recent traffic …).
    """

    run_id: str
    status: str
    steps: dict[str, str]
    error: str | None = None
    failed_step: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None
    project_dir: Path | None = None
    reports: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Whether every phase succeeded or came from the cache."""
        return self.status == "finished"

    @property
    def registration(self) -> dict[str, Any] | None:
        """The registered version: model, version, alias, gates_passed."""
        value = self.outputs.get("register")
        return value if isinstance(value, dict) else None


def _spec_error_with_line(project: Project, err: SpecError) -> SpecError:
    """Fill in the line of a spec error raised on a sub-section."""
    if err.line is not None or err.field is None:
        return err
    path = project.dir / SPEC_FILE
    _, lines = load_yaml_with_lines(read_text(path), str(path))
    loc = tuple(int(p) if p.isdigit() else p for p in err.field.split("."))
    return SpecError(
        err.detail, file=str(path), line=line_for(lines, loc), field=err.field, hint=err.hint
    )


_INTERNAL_PARAMS = ("project_dir", "fingerprint", "snapshot")


def source_fingerprint(files: list[Path]) -> str:
    """A digest of the source files' paths and bytes: changed data changes the cache key."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def lifecycle_params(project: Project, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check everything in the spec that can be checked before any data is read.

    Returns the lifecycle pipeline's parameters, with ``overrides`` applied (a new ``source``
    gets its own fingerprint).

    Raises:
        ConfigError / SpecError: the spec declares no lifecycle, or a section is invalid (an
            unknown metric, gate rule or candidate included: the error names file and line).
        MissingDependencyError: a candidate needs an extra that is not installed.
        DataError: the data source matches no file.
    """
    spec = project.spec
    if spec is None or spec.problem is None or spec.data is None:
        raise ConfigError(
            f"{project.dir / SPEC_FILE} declares no lifecycle: it needs 'problem' and 'data'",
            hint="see examples/churn/opsloop.yaml",
        )
    # Lazy imports here and below (noqa: PLC0415) of opsloop.data, opsloop.ml, opsloop.lifecycle,
    # opsloop.pipeline: each loads only where it is used, so importing this module stays light.
    from opsloop.data import parse_contract, resolve_source  # noqa: PLC0415
    from opsloop.data.sources import load_source, source_display  # noqa: PLC0415
    from opsloop.ml.candidates import get_candidate  # noqa: PLC0415
    from opsloop.ml.gates import validate_gates  # noqa: PLC0415
    from opsloop.ml.metrics import get_metric  # noqa: PLC0415

    problem = spec.problem
    file = str(project.dir / SPEC_FILE)
    # Each check names the field it reads, so that its error points at the file's line.
    checks: list[tuple[str, Callable[[], object]]] = [
        (
            "problem.metric" if problem.metric else "problem.type",
            lambda: get_metric(problem.primary_metric, problem.type),
        )
    ]
    for gate_name, rule in spec.evaluate.gates.items():
        checks.append(
            (
                f"evaluate.gates.{gate_name}",
                partial(validate_gates, {gate_name: rule}, problem.type),
            )
        )
    for i, name in enumerate(spec.train.candidates):
        checks.append((f"train.candidates.{i}", partial(get_candidate, name)))
    try:
        for where, check in checks:
            try:
                check()
            except MLError as exc:
                raise SpecError(exc.message, field=where, hint=exc.hint) from exc
        if spec.contract:
            parse_contract(spec.contract, file=file)
    except SpecError as err:
        raise _spec_error_with_line(project, err) from err
    registration = spec.registration
    model_name = registration.model if registration is not None else spec.project
    # A database or HTTP source is shown by its reference (or masked URL) and loaded below.
    table_source = None if isinstance(spec.data.source, str) else spec.data.source
    shown = source_display(spec.data.source)
    params: dict[str, Any] = {
        "source": shown,
        "snapshot": None,
        "project_dir": str(project.dir),
        "fingerprint": "",
        "target": problem.target,
        "problem_type": problem.type,
        "metric": problem.primary_metric,
        "model_name": model_name,
        "time_column": spec.data.time_column,
        "contract": spec.contract,
        "drop": list(spec.features.drop),
        "numeric": spec.features.numeric,
        "categorical": spec.features.categorical,
        "test_size": spec.train.test_size,
        "seed": spec.train.seed,
        "candidates": list(spec.train.candidates),
        "trials": spec.train.tune.trials,
        "timeout_s": spec.train.tune.timeout_s,
        "cv": spec.train.tune.cv,
        "max_cost": spec.train.tune.budget.max_cost if spec.train.tune.budget else None,
        # Trials are priced as pipeline steps are: the training price of today's rate card.
        "vcpu_hour": _training_vcpu_price(spec.finops),
        "gates": dict(spec.evaluate.gates),
        "alias_on_pass": registration.alias_on_pass if registration else "champion",
        "alias_on_fail": registration.alias_on_fail if registration else "challenger",
    }
    for key, value in (overrides or {}).items():
        if key not in params or key in _INTERNAL_PARAMS:
            known = sorted(k for k in params if k not in _INTERNAL_PARAMS)
            raise ConfigError(f"unknown lifecycle parameter '{key}'; known: {', '.join(known)}")
        # From the command line (-p trials=30) a value is text: read it as YAML, like the spec.
        text_for_typed = isinstance(value, str) and not isinstance(params[key], str | None)
        if not text_for_typed:
            params[key] = value
            continue
        try:
            params[key] = load_yaml(str(value), f"-p {key}", max_bytes=_MAX_PARAM_CHARS)
        except SpecError as exc:
            raise ConfigError(f"lifecycle parameter '{key}': {exc.detail}") from exc
    if table_source is not None and params["source"] == shown:
        # The load is the snapshot: its content digest is the fingerprint, and the ingest
        # step reads the Parquet snapshot from the artifact store.
        loaded = load_source(project, spec.data)
        params["snapshot"] = loaded.record.artifact
        params["fingerprint"] = "sha256:" + loaded.record.digest
    else:
        params["fingerprint"] = source_fingerprint(
            resolve_source(str(params["source"]), base_dir=project.dir)
        )
    # Everything that decides what gets trained, hashed: a champion trained from the same key
    # is this very configuration's own result, so comparing against it again would only
    # re-register an identical model.
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    params["lifecycle_key"] = key
    params["champion_digest"] = None
    try:
        champion = project.store.models.get_version_by_alias(model_name, "champion")
    except NotFoundError:
        return params
    if champion.details.get("lifecycle_key") == key:
        params["champion_digest"] = champion.details.get("champion_at_training")
    else:
        params["champion_digest"] = champion.artifact_digest
    return params


_JSON_OUTPUTS = {
    "ingest": "dataset",
    "validate": "output",
    "featurize": "output",
    "train": "tuning",
    "evaluate": "output",
    "gate": "output",
    "register": "output",
}


def run_lifecycle(
    project: Project,
    *,
    no_cache: bool = False,
    executor: str | Executor = "local",
    max_workers: int | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    recent: pd.DataFrame | None = None,
    recent_source: str = "recent labelled traffic",
    allow_rollback: bool = False,
) -> LifecycleOutcome:
    """Run the declared lifecycle in ``project`` and record what it did.

    Args:
        project: The project (its spec declares the lifecycle).
        no_cache: Run every phase again.
        executor: Pipeline executor name, or an executor (left open).
        max_workers: Phases run at once.
        overrides: Pipeline parameters to override (``-p trials=5``).
        progress: Show the live phase display.
        recent: Labelled rows of what production serves now (the input columns and the
            target), e.g. a deployment's prediction log joined with its feedback labels.
            The candidate must not be worse than the champion on them either (every
            ``vs_champion`` gate is judged on both). Ignored below :data:`MIN_RECENT_ROWS`.
        recent_source: Where ``recent`` came from, for the summary.
        allow_rollback: Let an alias move back to an older version (a training that came
            from the cache re-gated against a newer champion); otherwise it stays.
    """
    # The phases read the champion and write reports through the current project.
    with use_project(project):
        params = lifecycle_params(project, overrides)
        notes: list[str] = []
        params["recent_digest"] = _recent_digest(project, params, recent, recent_source, notes)
        params["allow_rollback"] = allow_rollback
        outcome = _run(project, params, no_cache, executor, max_workers, progress)
        outcome.notes[:0] = notes
        return outcome


def _recent_digest(
    project: Project,
    params: dict[str, Any],
    recent: pd.DataFrame | None,
    source: str,
    notes: list[str],
) -> str | None:
    """Store the recent labelled rows for the evaluate phase; None when there are none."""
    if recent is None or recent.empty:
        return None
    target = str(params["target"])
    if target not in recent.columns:
        raise DataError(
            f"{source}: the recent labelled rows have no target column '{target}'; "
            f"columns: {', '.join(map(str, recent.columns))}"
        )
    rows = recent[recent[target].notna()]
    if len(rows) < MIN_RECENT_ROWS:
        notes.append(
            f"{source}: {len(rows)} labelled row(s), fewer than {MIN_RECENT_ROWS}: the "
            "champion is compared on the test set only"
        )
        return None
    buffer = io.BytesIO()
    rows.reset_index(drop=True).to_parquet(buffer, index=False)
    notes.append(f"the champion is also compared on {len(rows):,} rows of {source}")
    return project.artifacts.put_bytes(buffer.getvalue())


def _run(
    project: Project,
    params: dict[str, Any],
    no_cache: bool,
    executor: str | Executor,
    max_workers: int | None,
    progress: bool,
) -> LifecycleOutcome:
    from opsloop.lifecycle.pipeline import lifecycle  # noqa: PLC0415
    from opsloop.pipeline import load_output, run_pipeline  # noqa: PLC0415

    result = run_pipeline(
        lifecycle,
        params,
        store=project.store,
        artifacts=project.artifacts,
        executor=executor,
        no_cache=no_cache,
        max_workers=max_workers,
        progress=progress,
        tags={"opsloop.lifecycle": "true"},
    )
    outcome = LifecycleOutcome(
        run_id=result.run_id,
        status=result.status,
        steps={name: s.status for name, s in result.steps.items()},
        project_dir=project.dir,
    )
    for name, s in result.steps.items():
        if s.status == "failed":
            outcome.failed_step = name
            outcome.error = s.info.error
            break
    for name, output in _JSON_OUTPUTS.items():
        phase = result.steps.get(name)
        if phase is not None and phase.status in ("succeeded", "cached"):
            outcome.outputs[name] = load_output(phase, output=output, artifacts=project.artifacts)
    _record(project, result.run_id, outcome, trained=result.steps.get("train"))
    return outcome


def _training_vcpu_price(finops: FinopsSection) -> float:
    """What a vCPU-hour of training costs today, by the project's rate cards."""
    card = finops.card_on(datetime.now(UTC).date())
    return card.unit_prices(card.training_instance)[0]


def _meter_trials(store: Store, run_id: str, durations: dict[str, float]) -> None:
    """Charge each tuning trial its share of what the ``train`` step metered, by its share of
    the step's wall time (FinOps); the step keeps the rest (preprocessing, the refit)."""
    rows = store.usage.read(kind="step", run=run_id, step="train")
    if not rows or not durations:
        return
    row = rows[-1]
    total = sum(durations.values())
    # Trials timed longer than the step (clock steps) share all of it, never more.
    scale = 1.0 / max(row.wall_s, total) if row.wall_s > 0 or total > 0 else 0.0
    parts = [("trial", {"trial": trial}, seconds * scale) for trial, seconds in durations.items()]
    store.usage.split(row, parts)


def _record(project: Project, run_id: str, outcome: LifecycleOutcome, trained: Any) -> None:
    """Log trials as child runs, the test metrics on the run, and fetch the report."""
    store = project.store
    tuning = outcome.outputs.get("train")
    if isinstance(tuning, dict) and trained is not None and trained.status == "succeeded":
        durations: dict[str, float] = {}
        for trial in tuning.get("trials", []):
            child = store.runs.create(
                f"{trial.get('candidate')}-{trial.get('number')}",
                kind="trial",
                parent_id=run_id,
                params={"candidate": trial.get("candidate"), **(trial.get("params") or {})},
                project=project.name,
            )
            score = trial.get("score")
            if isinstance(score, int | float):
                store.runs.log_metric_points(child.id, [("cv_score", float(score), 0, 0)])
            state = "finished" if trial.get("state") == "complete" else "failed"
            store.runs.finish(child.id, state, trial.get("error"))
            duration = trial.get("duration_s")
            if isinstance(duration, int | float) and duration > 0:
                durations[child.id] = float(duration)
        _meter_trials(store, run_id, durations)
    evaluation = outcome.outputs.get("evaluate")
    if isinstance(evaluation, dict):
        metrics = evaluation.get("metrics") or {}
        points = [
            (f"test_{k}", float(v), 0, 0) for k, v in metrics.items() if isinstance(v, int | float)
        ]
        store.runs.log_metric_points(run_id, points)
        digest = evaluation.get("report_digest")
        if isinstance(digest, str):
            size = project.artifacts.get_manifest(digest).size
            store.runs.log_artifact(run_id, "evaluation", digest, size, kind="dir")
            folder = project.state_dir / "reports" / run_id[:12]
            project.artifacts.get_dir(digest, folder)
            html = sorted(folder.glob("*.html"))
            outcome.report_path = html[0] if html else folder
            outcome.reports = sorted(p for p in folder.iterdir() if p.is_file())
