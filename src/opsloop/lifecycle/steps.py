"""The lifecycle phases as ordinary, cached pipeline steps.

ingest → validate → contract_gate → split → featurize → train → evaluate → gate → register

Each phase is a thin step over a pure function of :mod:`opsloop.data`, :mod:`opsloop.ml`,
:mod:`opsloop.monitor` or :mod:`opsloop.registry`; its parameters are plain JSON values, so the
cache key of a phase changes only when what it reads changes — editing the tuning budget
re-runs ``train`` and what follows it, never ``ingest`` or ``validate``.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import ContractError, DataError, NotFoundError, RollbackError
from opsloop.pipeline import step

if TYPE_CHECKING:
    from opsloop.store.types import ModelVersionInfo


@step(outputs=("data", "dataset"))
def ingest(
    source: str,
    project_dir: str,
    time_column: str | None,
    fingerprint: str,
    snapshot: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the source files (or the Parquet snapshot of a database or HTTP source) and
    describe the data set version they make.

    ``fingerprint`` (the files' digests, or the snapshot's content digest) is only here so
    that changed data changes the cache key.
    """
    # Lazy imports here and below (noqa: PLC0415) of opsloop.data, opsloop.ml, opsloop.pipeline,
    # opsloop.context, opsloop.lifecycle, opsloop.registry: each loads only where it is used, so
    # importing this module stays light.
    from opsloop.data import dataset_version, ensure_time_column, read_source, resolve_source  # noqa: PLC0415

    base = Path(project_dir)
    files: list[Path] = []
    if snapshot is not None:
        from opsloop.context import current_project  # noqa: PLC0415

        df = pd.read_parquet(io.BytesIO(current_project().artifacts.get_bytes(snapshot)))
    else:
        files = resolve_source(source, base_dir=base)
        df = read_source(source, base_dir=base)
    if time_column is not None:
        if time_column not in df.columns:
            raise DataError(
                f"{source}: time column '{time_column}' (data.time_column) is not in the data; "
                f"columns: {', '.join(map(str, df.columns))}"
            )
        df = ensure_time_column(df, time_column)
    version = dataset_version(df, source=source, files=files, base_dir=base)
    return df, version.model_dump(mode="json")


@step
def validate(
    data: pd.DataFrame,
    source: str,
    target: str,
    contract: dict[str, Any] | None,
    drop: list[str],
) -> dict[str, Any]:
    """Check the target, empty features and the data contract; report every failure."""
    from opsloop.data import all_nan_columns, check_contract, parse_contract  # noqa: PLC0415
    from opsloop.data.pii import detect_pii  # noqa: PLC0415

    if target not in data.columns:
        raise DataError(
            f"{source}: target column '{target}' (problem.target) is not in the data; "
            f"columns: {', '.join(map(str, data.columns))}"
        )
    empty = [c for c in all_nan_columns(data) if c not in drop and c != target]
    if empty:
        raise DataError(
            f"{source}: feature column(s) with no values at all: {', '.join(empty)}",
            hint="fix the data, or list the column(s) under features.drop",
        )
    if not contract:
        pii = [found.model_dump(mode="json") for found in detect_pii(data)]
        return {"passed": True, "rows": len(data), "rules_checked": 0, "failures": [], "pii": pii}
    report = check_contract(data, parse_contract(contract))
    return report.model_dump(mode="json")


@step
def contract_gate(report: dict[str, Any], source: str) -> dict[str, Any]:
    """Stop the run before training when an error-severity contract rule failed."""
    from opsloop.data import ContractReport  # noqa: PLC0415

    rep = ContractReport.model_validate(report)
    if not rep.passed:
        lines = [
            f"column '{f.column}': {f.rule}: {f.message}" if f.column else f"{f.rule}: {f.message}"
            for f in rep.errors
        ]
        raise ContractError(
            f"{source} breaks its data contract ({len(lines)} error(s)): " + "; ".join(lines),
            failures=[f.model_dump(mode="json") for f in rep.errors],
        )
    return {"passed": True, "warnings": len(rep.warnings)}


@step(outputs=("train", "test"))
def split(
    data: pd.DataFrame,
    contract_ok: dict[str, Any],
    target: str,
    problem_type: str,
    test_size: float,
    time_column: str | None,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a test set: stratified random, or the latest rows when there is a time column."""
    from opsloop.ml.split import split_dataset  # noqa: PLC0415

    return split_dataset(
        data,
        target=target,
        problem_type=problem_type,
        test_size=test_size,
        time_column=time_column,
        seed=seed,
    )


@step
def featurize(
    train: pd.DataFrame,
    target: str,
    drop: list[str],
    numeric: list[str] | None,
    categorical: list[str] | None,
    time_column: str | None,
) -> dict[str, Any]:
    """Decide the numeric and categorical features (the preprocessor is fitted in ``train``)."""
    from opsloop.ml.features import check_feature_frame, infer_feature_types  # noqa: PLC0415

    spec = infer_feature_types(
        train, target, drop=drop, numeric=numeric, categorical=categorical, time_column=time_column
    )
    check_feature_frame(train, spec, part="training data")
    return spec.model_dump(mode="json")


@step(outputs=("model", "tuning"))
def train(
    train: pd.DataFrame,
    features: dict[str, Any],
    target: str,
    problem_type: str,
    metric: str,
    candidates: list[str],
    trials: int,
    timeout_s: float,
    cv: int,
    seed: int,
    max_cost: float | None = None,
    vcpu_hour: float = 0.0,
) -> tuple[Any, dict[str, Any]]:
    """Tune every candidate with cross-validation on the training part; refit the best.

    Each finished trial is a progress line on the run's display. ``max_cost`` stops tuning
    once its trials (priced at ``vcpu_hour`` per CPU-hour) have cost that much.
    """
    from opsloop.ml.features import FeatureSpec  # noqa: PLC0415
    from opsloop.ml.tune import TrialRecord, tune_candidates  # noqa: PLC0415
    from opsloop.pipeline.progress import report_progress  # noqa: PLC0415

    def on_trial(record: TrialRecord) -> None:
        report_progress(record.describe(metric))

    backend = None
    if os.environ.get("OPSLOOP_EXECUTOR") == "ray":
        # Under the ray executor the trials run as Ray tasks across the cluster too.
        from opsloop.ml.tune_ray import RayTrials  # noqa: PLC0415

        backend = RayTrials
    result = tune_candidates(
        train,
        target=target,
        problem_type=problem_type,
        metric=metric,
        feature_spec=FeatureSpec.model_validate(features),
        candidates=candidates,
        trials=trials,
        timeout_s=timeout_s,
        seed=seed,
        cv=cv,
        on_trial=on_trial,
        progress=False,
        # From the command line (-p max_cost=0.5) an unset budget's value arrives as text.
        max_cost=None if max_cost is None else float(max_cost),
        vcpu_hour=float(vcpu_hour),
        trial_backend=backend,
    )
    return result.model, result.summary()


@step
def evaluate(
    model: Any,
    test: pd.DataFrame,
    contract_report: dict[str, Any],
    target: str,
    problem_type: str,
    model_name: str,
    champion_digest: str | None,
    gates: dict[str, dict[str, Any]],
    recent_digest: str | None = None,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the candidate (and the current champion) on the held-out test set, and on the
    recent labelled traffic when there is some.

    The plots and the HTML report go to the artifact store as one folder; its digest is in
    the result. ``champion_digest`` names the champion's artifact, so a new champion changes
    the cache key; ``recent_digest`` names the recent labelled rows (Parquet), so new labels
    do too.
    """
    from opsloop.context import current_project  # noqa: PLC0415
    from opsloop.ml.evaluate import compare_on_frame, evaluate_model  # noqa: PLC0415

    champion = None
    if champion_digest is not None:
        from opsloop.registry import load_model  # noqa: PLC0415

        champion = load_model(f"models:/{model_name}@champion").model
    artifacts = current_project().artifacts
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate_model(
            model,
            test,
            target=target,
            problem_type=problem_type,
            out_dir=Path(tmp),
            champion=champion,
            gates_config=gates,
            contract_passed=bool(contract_report.get("passed", True)),
            title=f"{model_name}: evaluation on the held-out test set",
            tuning=tuning,
        )
        report_digest = artifacts.put_dir(Path(tmp))
    out = result.model_dump(mode="json")
    out["report_digest"] = report_digest
    if recent_digest is not None:
        recent = pd.read_parquet(io.BytesIO(artifacts.get_bytes(recent_digest)))
        out["recent"] = compare_on_frame(
            model, champion, recent, target=target, problem_type=problem_type
        )
    return out


@step
def gate(
    evaluation: dict[str, Any],
    contract_report: dict[str, Any],
    gates: dict[str, dict[str, Any]],
    problem_type: str,
) -> list[dict[str, Any]]:
    """Apply the gates: metric thresholds, not worse than the champion (on the test set, and
    on recent labelled traffic when there is some), contract passed."""
    from opsloop.ml.gates import evaluate_gates, recent_champion_gates  # noqa: PLC0415

    results = evaluate_gates(
        gates,
        evaluation["metrics"],
        champion_metrics=evaluation.get("champion_metrics"),
        contract_passed=bool(contract_report.get("passed", True)),
        problem_type=problem_type,
    )
    recent = evaluation.get("recent") or {}
    if recent.get("champion_metrics") is not None:
        results += recent_champion_gates(
            gates,
            recent["metrics"],
            recent["champion_metrics"],
            rows=int(recent["rows"]),
            problem_type=problem_type,
        )
    return [r.model_dump(mode="json") for r in results]


@step
def register(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    dataset: dict[str, Any],
    features: dict[str, Any],
    tuning: dict[str, Any],
    evaluation: dict[str, Any],
    gates: list[dict[str, Any]],
    contract_report: dict[str, Any],
    model_name: str,
    alias_on_pass: str,
    alias_on_fail: str | None,
    lifecycle_key: str,
    champion_digest: str | None,
    allow_rollback: bool = False,
) -> dict[str, Any]:
    """Register a model version either way; the alias says whether every gate passed.

    The reference profile of the data the version was built and checked on, the training and
    the held-out test part together (and of the model's predictions on it), is stored with the
    version, so that monitoring compares live traffic with it. The test part is the newest
    under a time-based split: a profile of the training part alone would call the population
    the model was evaluated for drifted.

    A version trained from the same lifecycle key (same data, configuration and code: the
    training came from the cache) is not registered twice: the alias moves to it instead. That
    happens when only the champion changed since, so the evaluation and the gates ran again.
    Moving an alias back to that older version is a rollback: without ``allow_rollback`` the
    alias stays where it is, and the result says so (``kept``).
    """
    from opsloop.context import current_project  # noqa: PLC0415
    from opsloop.data.reference import build_reference_profile  # noqa: PLC0415
    from opsloop.lifecycle.aliases import move_alias  # noqa: PLC0415
    from opsloop.pipeline.worker import current_task  # noqa: PLC0415
    from opsloop.registry import register_model  # noqa: PLC0415

    passed = all(bool(g["passed"]) for g in gates)
    alias = alias_on_pass if passed else alias_on_fail
    earlier = _same_training(model_name, lifecycle_key)
    if earlier is not None:
        out: dict[str, Any] = {
            "model": model_name,
            "version": earlier.version,
            "alias": alias,
            "gates_passed": passed,
            "artifact": earlier.artifact_digest,
            "reused": True,
        }
        if alias is not None:
            try:
                move_alias(
                    current_project().store,
                    model_name,
                    alias,
                    earlier.version,
                    allow_rollback=allow_rollback,
                )
            except RollbackError as exc:
                out["alias"] = None
                out["kept"] = {"alias": alias, "message": exc.message}
        return out
    task = current_task()
    spec_columns = [c for c in features["dtypes"]]
    x = pd.concat([train[spec_columns], test[spec_columns]], ignore_index=True)
    predictions = _positive_scores(model, x)
    profile = build_reference_profile(
        x,
        numeric=list(features["numeric"]),
        categorical=list(features["categorical"]),
        predictions=predictions,
    )
    artifacts = current_project().artifacts
    profile_digest = artifacts.put_bytes(profile.model_dump_json().encode())
    version = register_model(
        model_name,
        model,
        input_example=x.head(5),
        metrics={k: v for k, v in evaluation["metrics"].items() if isinstance(v, int | float)},
        dataset_digest=dataset["digest"],
        alias=alias,
        # The pipeline run that trained it: `opsloop models show` and MLmodel name it.
        run_id=task.run_id if task is not None else None,
        description=f"{tuning.get('best_candidate', 'model')} trained by the lifecycle pipeline",
        details={
            "gates": gates,
            "gates_passed": passed,
            "dataset": dataset,
            "features": features,
            "tuning": {k: v for k, v in tuning.items() if k != "trials"},
            "evaluation_report": evaluation.get("report_digest"),
            "champion_metrics": evaluation.get("champion_metrics"),
            "contract": {
                "passed": contract_report.get("passed", True),
                "failures": contract_report.get("failures", []),
                # Personal-data columns of the data set version (declared or detected).
                "pii": contract_report.get("pii", []),
            },
            "reference_profile": profile_digest,
            "lifecycle_key": lifecycle_key,
            "champion_at_training": champion_digest,
        },
    )
    return {
        "model": model_name,
        "version": version.version,
        "alias": alias,
        "gates_passed": passed,
        "artifact": version.artifact_digest,
    }


def _same_training(model_name: str, lifecycle_key: str) -> ModelVersionInfo | None:
    """The newest version of ``model_name`` trained from ``lifecycle_key``, if any."""
    from opsloop.context import current_project  # noqa: PLC0415

    try:
        versions = current_project().store.models.list_versions(model_name)
    except NotFoundError:
        return None
    return next((v for v in versions if v.details.get("lifecycle_key") == lifecycle_key), None)


def _positive_scores(model: Any, x: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Scores whose distribution monitoring watches: P(positive class), or the prediction."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x))
        return proba[:, -1] if proba.ndim == 2 else proba
    return np.asarray(model.predict(x), dtype=float)
