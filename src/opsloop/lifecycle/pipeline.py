"""The lifecycle as one ``@pipeline`` over the phase steps."""

from __future__ import annotations

from typing import Any

from opsloop.lifecycle import steps
from opsloop.pipeline import pipeline


@pipeline(name="lifecycle")
def lifecycle(
    source: str,
    project_dir: str,
    fingerprint: str,
    target: str,
    problem_type: str,
    metric: str,
    model_name: str,
    time_column: str | None = None,
    contract: dict[str, Any] | None = None,
    drop: list[str] | None = None,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    candidates: list[str] | None = None,
    trials: int = 20,
    timeout_s: float = 120.0,
    max_cost: float | None = None,
    vcpu_hour: float = 0.0,
    cv: int = 3,
    gates: dict[str, dict[str, Any]] | None = None,
    alias_on_pass: str = "champion",
    alias_on_fail: str | None = "challenger",
    champion_digest: str | None = None,
    lifecycle_key: str = "",
    recent_digest: str | None = None,
    allow_rollback: bool = False,
    snapshot: str | None = None,
) -> None:
    """The phases: ingest, validate, contract_gate, split, featurize, train, evaluate, gate,
    register."""
    drop = drop or []
    data, dataset = steps.ingest(
        source=source,
        project_dir=project_dir,
        time_column=time_column,
        fingerprint=fingerprint,
        snapshot=snapshot,
    )
    report = steps.validate(data, source=source, target=target, contract=contract, drop=drop)
    contract_ok = steps.contract_gate(report, source=source)
    train_df, test_df = steps.split(
        data,
        contract_ok,
        target=target,
        problem_type=problem_type,
        test_size=test_size,
        time_column=time_column,
        seed=seed,
    )
    features = steps.featurize(
        train_df,
        target=target,
        drop=drop,
        numeric=numeric,
        categorical=categorical,
        time_column=time_column,
    )
    model, tuning = steps.train(
        train_df,
        features,
        target=target,
        problem_type=problem_type,
        metric=metric,
        candidates=candidates or [],
        trials=trials,
        timeout_s=timeout_s,
        cv=cv,
        seed=seed,
        max_cost=max_cost,
        vcpu_hour=vcpu_hour,
    )
    evaluation = steps.evaluate(
        model,
        test_df,
        report,
        target=target,
        problem_type=problem_type,
        model_name=model_name,
        champion_digest=champion_digest,
        gates=gates or {},
        recent_digest=recent_digest,
        tuning=tuning,
    )
    gate_results = steps.gate(evaluation, report, gates=gates or {}, problem_type=problem_type)
    steps.register(
        model,
        train_df,
        test_df,
        dataset,
        features,
        tuning,
        evaluation,
        gate_results,
        report,
        model_name=model_name,
        alias_on_pass=alias_on_pass,
        alias_on_fail=alias_on_fail,
        lifecycle_key=lifecycle_key,
        champion_digest=champion_digest,
        allow_rollback=allow_rollback,
    )
