"""The declared lifecycle: phases, cache reuse, gates, and every kind of bad input.

Each bad input must give one clear error naming the file and column, and leave no model
version or alias change behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from opsloop.context import Project, open_project, set_current_project
from opsloop.data.reference import ReferenceProfile
from opsloop.errors import DataError, SpecError
from opsloop.lifecycle import LifecycleOutcome, run_lifecycle
from opsloop.registry import load_model


def make_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    charges = rng.normal(60, 20, n).round(2)
    charges[rng.random(n) < 0.05] = np.nan
    logit = -0.05 * tenure + 0.02 * (charges - 60) + (plan == "basic") * 0.8
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "tenure_months": tenure,
            "plan": plan,
            "monthly_charges": charges,
            "churned": churned,
        }
    )


def base_spec(**overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "project": "lc",
        "problem": {"type": "classification", "target": "churned", "metric": "roc_auc"},
        "data": {"source": "data/customers.csv"},
        "contract": {
            "columns": {
                "tenure_months": {"dtype": "int", "min": 0, "nullable": False},
                "plan": {"dtype": "category", "values": ["basic", "plus", "pro"]},
            },
            "row_count": {"min": 100},
            "unique": ["customer_id"],
        },
        "features": {"drop": ["customer_id"]},
        "train": {
            "candidates": ["logistic_regression"],
            "tune": {"trials": 2, "timeout_s": 30, "cv": 2},
        },
        "evaluate": {"gates": {"roc_auc": {"min": 0.55}}},
        "register": {"model": "lc", "alias_on_pass": "champion", "alias_on_fail": "challenger"},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[object]:
    opened: list[Project] = []

    def _make(
        spec: dict[str, object] | None = None,
        frame: pd.DataFrame | None = None,
        raw: bytes | None = None,
        name: str = "customers.csv",
    ) -> Project:
        folder = tmp_path / f"p{len(opened)}"
        (folder / "data").mkdir(parents=True)
        (folder / "opsloop.yaml").write_text(yaml.safe_dump(spec or base_spec()))
        target = folder / "data" / name
        if raw is not None:
            target.write_bytes(raw)
        elif frame is not None or raw is None:
            (frame if frame is not None else make_frame()).to_csv(target, index=False)
        proj = open_project(folder)
        set_current_project(proj)
        opened.append(proj)
        return proj

    yield _make
    for p in opened:
        p.close()
    set_current_project(None)


def run(proj: Project) -> LifecycleOutcome:
    return run_lifecycle(proj, executor="inline", progress=False)


def assert_nothing_registered(proj: Project) -> None:
    assert proj.store.models.list() == []
    assert proj.store.events.list(kind="alias.*") == []


def test_lifecycle_registers_champion_then_reuses_cache(make_project) -> None:  # type: ignore[no-untyped-def]
    proj = make_project()
    first = run(proj)
    assert first.succeeded, first.error
    assert set(first.steps.values()) == {"succeeded"}
    reg = first.registration
    assert reg is not None and reg["version"] == 1 and reg["alias"] == "champion"
    version = proj.store.models.get_version_by_alias("lc", "champion")
    assert version.dataset_digest == first.outputs["ingest"]["digest"]
    assert version.details["gates_passed"] is True
    assert {g["name"] for g in version.details["gates"]} >= {"roc_auc", "contract"}
    assert proj.artifacts.exists(version.details["reference_profile"])
    # The reference covers the rows the version was trained and tested on, not the training
    # part alone: live traffic like the test part is not drift.
    profile = ReferenceProfile.model_validate_json(
        proj.artifacts.get_bytes(version.details["reference_profile"])
    )
    assert profile.rows == first.outputs["ingest"]["rows"], profile.rows
    assert first.report_path is not None and first.report_path.is_file()
    trials = proj.store.runs.list(kind="trial", parent_id=first.run_id)
    assert len(trials) == 2 and all("cv_score" in t.metrics for t in trials)

    again = run(proj)
    assert again.succeeded and set(again.steps.values()) == {"cached"}
    assert again.registration == reg  # nothing new registered

    # Editing only the tuning budget re-runs train and what follows, not the data phases.
    spec = base_spec()
    spec["train"] = {"candidates": ["logistic_regression"], "tune": {"trials": 3, "cv": 2}}
    (proj.dir / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    third = run(open_project(proj.dir))
    assert third.succeeded, third.error
    for phase in ("ingest", "validate", "contract_gate", "split", "featurize"):
        assert third.steps[phase] == "cached", phase
    assert third.steps["train"] == "succeeded"
    assert third.registration is not None and third.registration["version"] == 2

    # Back to the first configuration: its training comes from the cache, and the gates run
    # again against the new champion; the same training is not registered a second time.
    # Moving the champion back to it is a rollback: refused unless asked for.
    (proj.dir / "opsloop.yaml").write_text(yaml.safe_dump(base_spec()))
    fourth = run(open_project(proj.dir))
    assert fourth.succeeded, fourth.error
    assert fourth.steps["train"] == "cached" and fourth.steps["register"] == "succeeded"
    back = fourth.registration
    assert back is not None and back["version"] == 1 and back["reused"] is True
    assert back["alias"] is None and back["kept"]["alias"] == "champion"
    assert "rollback" in back["kept"]["message"]
    assert [v.version for v in proj.store.models.list_versions("lc")] == [2, 1]
    assert proj.store.models.get_version_by_alias("lc", "champion").version == 2

    fifth = run_lifecycle(
        open_project(proj.dir), executor="inline", progress=False, allow_rollback=True
    )
    assert fifth.succeeded, fifth.error
    moved = fifth.registration
    assert moved is not None and moved["version"] == 1 and moved["alias"] == "champion"
    assert proj.store.models.get_version_by_alias("lc", "champion").version == 1

    # Every version names the pipeline run that trained it, here and in its MLmodel.
    assert proj.store.models.get_version("lc", 1).run_id == first.run_id
    assert proj.store.models.get_version("lc", 2).run_id == third.run_id
    assert load_model("models:/lc/2").metadata.run_id == third.run_id


def test_failing_gate_registers_challenger(make_project) -> None:  # type: ignore[no-untyped-def]
    proj = make_project(base_spec(evaluate={"gates": {"roc_auc": {"min": 0.999}}}))
    out = run(proj)
    assert out.succeeded
    assert out.registration is not None and out.registration["alias"] == "challenger"
    assert not out.registration["gates_passed"]
    info = proj.store.models.get("lc")
    assert info.aliases == {"challenger": 1}


def test_contract_failures_are_all_reported_and_stop_training(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame()
    df.loc[3, "tenure_months"] = -5
    df.loc[7, "plan"] = "gold"
    df.loc[9, "customer_id"] = df.loc[8, "customer_id"]
    proj = make_project(frame=df)
    out = run(proj)
    assert not out.succeeded and out.failed_step == "contract_gate"
    assert out.steps["train"] == "skipped" and out.steps["register"] == "skipped"
    msg = out.error or ""
    assert "data/customers.csv" in msg
    for column in ("tenure_months", "plan", "customer_id"):
        assert f"column '{column}'" in msg
    failures = out.outputs["validate"]["failures"]
    assert {f["rule"] for f in failures} >= {"min", "values", "unique"}
    assert_nothing_registered(proj)


def test_warn_rule_is_recorded_not_fatal(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame()
    df.loc[5, "plan"] = "gold"
    spec = base_spec()
    spec["contract"] = {
        "columns": {
            "plan": {"dtype": "category", "values": ["basic", "plus", "pro"], "severity": "warn"}
        }
    }
    proj = make_project(spec, frame=df)
    out = run(proj)
    assert out.succeeded, out.error
    warns = [f for f in out.outputs["validate"]["failures"] if f["severity"] == "warn"]
    assert warns and warns[0]["column"] == "plan"


def _fails_in_step(proj: Project, step: str, *words: str) -> None:
    out = run(proj)
    assert not out.succeeded and out.failed_step == step, (out.failed_step, out.error)
    for w in words:
        assert w in (out.error or ""), (w, out.error)
    assert_nothing_registered(proj)


def test_missing_target_column(make_project) -> None:  # type: ignore[no-untyped-def]
    proj = make_project(frame=make_frame().drop(columns=["churned"]))
    _fails_in_step(proj, "validate", "data/customers.csv", "target column 'churned'")


def test_target_with_one_class(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame()
    df["churned"] = 0
    proj = make_project(frame=df)
    _fails_in_step(proj, "split", "churned", "class")


def test_all_nan_feature(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame()
    df["monthly_charges"] = np.nan
    proj = make_project(frame=df)
    _fails_in_step(proj, "validate", "data/customers.csv", "monthly_charges")


def test_column_type_contradicts_contract(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame().astype({"tenure_months": object})
    df.loc[2, "tenure_months"] = "ten"
    proj = make_project(frame=df)
    _fails_in_step(proj, "contract_gate", "data/customers.csv", "column 'tenure_months'", "dtype")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", ("customers.csv", "empty")),
        (b"a,b\n1,2,3,4\n5\n", ("customers.csv",)),
        (b"tenure,plan\n1,caf\xe9\n", ("customers.csv", "UTF-8")),
    ],
    ids=["empty", "not-csv", "not-utf8"],
)
def test_unreadable_csv(make_project, raw: bytes, words: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    proj = make_project(raw=raw)
    _fails_in_step(proj, "ingest", *words)


def test_invalid_parquet(make_project) -> None:  # type: ignore[no-untyped-def]
    spec = base_spec(data={"source": "data/customers.parquet"})
    proj = make_project(spec, raw=b"PAR1 this is not parquet", name="customers.parquet")
    _fails_in_step(proj, "ingest", "customers.parquet")


def test_source_does_not_exist(make_project) -> None:  # type: ignore[no-untyped-def]
    proj = make_project(base_spec(data={"source": "data/nope.csv"}))
    with pytest.raises(DataError, match=r"nope\.csv"):
        run(proj)
    assert_nothing_registered(proj)
    assert proj.store.runs.list() == []


def test_gate_with_unknown_metric(make_project) -> None:  # type: ignore[no-untyped-def]
    proj = make_project(base_spec(evaluate={"gates": {"accuracyy": {"min": 0.5}}}))
    with pytest.raises(SpecError) as info:
        run(proj)
    err = info.value
    assert err.field == "evaluate.gates.accuracyy" and err.line is not None
    assert str(err).startswith(f"{proj.dir / 'opsloop.yaml'}:{err.line}: ")
    assert "did you mean 'accuracy'?" in str(err)
    assert_nothing_registered(proj)
    assert proj.store.runs.list() == []


@pytest.mark.parametrize(
    ("overrides", "field", "near"),
    [
        (
            {"problem": {"type": "classification", "target": "churned", "metric": "roc_acu"}},
            "problem.metric",
            "roc_auc",
        ),
        (
            {"train": {"candidates": ["logistic_regresion"], "tune": {"trials": 2}}},
            "train.candidates.0",
            "logistic_regression",
        ),
        (
            {"evaluate": {"gates": {"vs_champion": {"metric": "roc_auc", "max_dorp": 0.1}}}},
            "evaluate.gates.vs_champion",
            "max_drop",
        ),
    ],
    ids=["metric", "candidate", "gate-key"],
)
def test_near_misses_name_file_line_and_the_known_word(  # type: ignore[no-untyped-def]
    make_project, overrides: dict[str, object], field: str, near: str
) -> None:
    proj = make_project(base_spec(**overrides))
    with pytest.raises(SpecError) as info:
        run(proj)
    err = info.value
    assert err.field == field and err.line is not None, str(err)
    assert str(err).startswith(f"{proj.dir / 'opsloop.yaml'}:{err.line}: field '{field}': ")
    assert f"did you mean '{near}'?" in str(err)
    assert_nothing_registered(proj)


def test_invalid_contract_names_line(make_project) -> None:  # type: ignore[no-untyped-def]
    spec = base_spec()
    spec["contract"] = {"columns": {"plan": {"dtype": "colour"}}}
    proj = make_project(spec)
    with pytest.raises(SpecError) as info:
        run(proj)
    assert info.value.line is not None and "contract.columns.plan.dtype" in str(info.value)
    assert_nothing_registered(proj)


def test_pii_columns_are_reported_at_ingest_and_recorded_with_the_version(make_project) -> None:  # type: ignore[no-untyped-def]
    df = make_frame()
    df["email"] = [f"user{i}@example.com" for i in range(len(df))]
    spec = base_spec(features={"drop": ["customer_id", "email"]})
    spec["contract"]["columns"]["plan"]["pii"] = True  # type: ignore[index]
    proj = make_project(spec, frame=df)
    out = run(proj)
    assert out.succeeded, out.error
    report = out.outputs["validate"]
    assert [(p["column"], p["kind"]) for p in report["pii"]] == [
        ("plan", "declared"),
        ("email", "email"),
    ]
    [warning] = [f for f in report["failures"] if f["rule"] == "pii"]
    assert warning["column"] == "email" and warning["severity"] == "warn"
    version = proj.store.models.get_version_by_alias("lc", "champion")
    assert {p["column"] for p in version.details["contract"]["pii"]} == {"plan", "email"}
