"""The champion never moves backwards silently.

The story of the quickstart, small: a champion (v1) is trained on the original data; the
world drifts and a retrained v2 becomes champion; then the lifecycle runs again on the
original data. Its training comes from the cache, it beats v2 on the original test split —
and would have become champion again, silently, although it fails on today's traffic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from opsloop.context import Project, open_project, set_current_project
from opsloop.errors import DataError
from opsloop.lifecycle import run_lifecycle
from opsloop.lifecycle.driver import MIN_RECENT_ROWS
from opsloop.monitor.windows import LABEL, recent_labelled_rows
from opsloop.store import Store, open_store

DEPLOYMENT = "churn-prod"


def churn_frame(n: int, seed: int, *, drifted: bool = False) -> pd.DataFrame:
    """Churn data; ``drifted`` reverses how tenure and plan relate to churn."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    sign = -1.0 if drifted else 1.0
    logit = sign * (-0.08 * (tenure - 36) + (plan == "basic") * 1.2 - 0.4)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i:05d}" for i in range(n)],
            "tenure_months": tenure,
            "plan": plan,
            "churned": churned,
        }
    )


def spec(gates: dict[str, object]) -> dict[str, object]:
    return {
        "project": "guard",
        "problem": {"type": "classification", "target": "churned", "metric": "roc_auc"},
        "data": {"source": "data/customers.csv"},
        "features": {"drop": ["customer_id"]},
        "train": {
            "candidates": ["logistic_regression"],
            "tune": {"trials": 2, "timeout_s": 30, "cv": 2},
        },
        "evaluate": {"gates": gates},
        "register": {"model": "churn", "alias_on_pass": "champion", "alias_on_fail": "challenger"},
    }


VS_CHAMPION = {"roc_auc": {"min": 0.55}, "vs_champion": {"metric": "roc_auc", "max_drop": 0.005}}


@pytest.fixture
def healed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """v1 trained on the original data, then v2 on drifted data: v2 is champion, and the
    original data is back in place (as in the quickstart's project after its loop).

    The gates are ``VS_CHAMPION`` unless the test is parametrized with others.
    """
    gates = getattr(request, "param", VS_CHAMPION)
    folder = tmp_path / "guard"
    (folder / "data").mkdir(parents=True)
    (folder / "opsloop.yaml").write_text(yaml.safe_dump(spec(gates)))
    source = folder / "data" / "customers.csv"
    original = churn_frame(800, seed=1)
    proj = open_project(folder)
    set_current_project(proj)
    try:
        original.to_csv(source, index=False)
        first = run_lifecycle(proj, executor="inline", progress=False)
        assert first.registration is not None and first.registration["alias"] == "champion"
        churn_frame(800, seed=2, drifted=True).to_csv(source, index=False)
        second = run_lifecycle(proj, executor="inline", progress=False)
        assert second.registration is not None, second.error
        assert (second.registration["version"], second.registration["alias"]) == (2, "champion")
        original.to_csv(source, index=False)
        yield proj
    finally:
        proj.close()
        set_current_project(None)


def recent(n: int = 400) -> pd.DataFrame:
    """Labelled rows of today's (drifted) traffic, as the deployment saw them."""
    return churn_frame(n, seed=3, drifted=True).drop(columns=["customer_id"])


def champion(proj: Project) -> int:
    return proj.store.models.get_version_by_alias("churn", "champion").version


def test_recent_traffic_keeps_the_healed_champion(healed: Project) -> None:
    out = run_lifecycle(healed, executor="inline", progress=False, recent=recent())
    assert out.succeeded, out.error
    assert out.steps["train"] == "cached"  # the original training, from the cache
    gates = {g["name"]: g for g in out.outputs["gate"]}
    # On the original test split the old model wins; on today's traffic it loses.
    assert gates["vs_champion"]["passed"] is True
    on_recent = gates["vs_champion (recent traffic)"]
    assert on_recent["passed"] is False and "400 recent labelled rows" in on_recent["message"]
    reg = out.registration
    assert reg is not None and (reg["version"], reg["alias"]) == (1, "challenger")
    assert champion(healed) == 2
    evaluation = out.outputs["evaluate"]["recent"]
    assert evaluation["rows"] == 400
    assert evaluation["metrics"]["roc_auc"] < evaluation["champion_metrics"]["roc_auc"] - 0.2
    assert any("400 rows" in note for note in out.notes)


def test_without_recent_traffic_the_move_back_is_a_refused_rollback(healed: Project) -> None:
    out = run_lifecycle(healed, executor="inline", progress=False)
    reg = out.registration
    assert reg is not None and reg["version"] == 1 and reg["gates_passed"] is True
    assert reg["alias"] is None and reg["kept"]["alias"] == "champion"
    assert "is v2; moving it back to v1 is a rollback" in reg["kept"]["message"]
    assert champion(healed) == 2


def test_too_few_recent_rows_are_noted_not_used(healed: Project) -> None:
    out = run_lifecycle(
        healed, executor="inline", progress=False, recent=recent(MIN_RECENT_ROWS - 1)
    )
    assert "recent" not in out.outputs["evaluate"]
    assert any("fewer than" in note for note in out.notes)
    assert champion(healed) == 2


def test_recent_rows_without_the_target_are_refused_before_anything_runs(
    healed: Project,
) -> None:
    runs = len(healed.store.runs.list(kind="pipeline"))
    with pytest.raises(DataError, match="no target column 'churned'"):
        run_lifecycle(
            healed, progress=False, recent=recent().drop(columns=["churned"]), recent_source="x"
        )
    assert len(healed.store.runs.list(kind="pipeline")) == runs


def test_recent_labelled_rows_newest_first_with_labels(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        log_traffic(store, churn_frame(50, seed=4), t0, prefix="a")
        store.predictions.log(
            [
                {
                    "request_id": "shadow-1",
                    "deployment": DEPLOYMENT,
                    "model_name": "churn",
                    "model_version": "9",
                    "time": t0,
                    "latency_ms": 1.0,
                    "shadow": True,
                    "inputs": {"tenure_months": [1], "plan": ["pro"]},
                    "outputs": {"values": [[0.5, 0.5]]},
                    "rows": 1,
                    "chunk": None,
                }
            ]
        )
        rows = recent_labelled_rows(
            store,
            DEPLOYMENT,
            until=t0 + timedelta(days=1),
            since=t0 - timedelta(days=1),
            max_rows=20,
        )
        assert len(rows) == 20
        assert list(rows.columns) == ["tenure_months", "plan", LABEL]
        # The newest 20 of the 50 labelled requests (request i was sent at t0 + i s).
        frame = churn_frame(50, seed=4)
        assert rows["tenure_months"].tolist() == frame["tenure_months"][::-1][:20].tolist()
        assert rows[LABEL].tolist() == frame["churned"][::-1][:20].tolist()
        none = recent_labelled_rows(
            store, "elsewhere", until=t0 + timedelta(days=1), since=t0 - timedelta(days=1)
        )
        assert none.empty
    finally:
        store.close()


def log_traffic(store: Store, frame: pd.DataFrame, t0: datetime, *, prefix: str) -> None:
    """One request per row of ``frame``, answered by churn v2, labelled a minute later."""
    ids = [f"{prefix}{i}" for i in range(len(frame))]
    store.predictions.log(
        [
            {
                "request_id": rid,
                "deployment": DEPLOYMENT,
                "model_name": "churn",
                "model_version": "2",
                "time": t0 + timedelta(seconds=i),
                "latency_ms": 1.0,
                "shadow": False,
                "inputs": {"tenure_months": [int(row.tenure_months)], "plan": [row.plan]},
                "outputs": {"values": [[0.5, 0.5]]},
                "rows": 1,
                "chunk": None,
            }
            for i, (rid, row) in enumerate(zip(ids, frame.itertuples(), strict=True))
        ]
    )
    store.predictions.log_feedback(
        [
            {
                "request_id": rid,
                "deployment": DEPLOYMENT,
                "time": t0 + timedelta(seconds=i, minutes=1),
                "label": {"value": int(label)},
            }
            for i, (rid, label) in enumerate(zip(ids, frame["churned"], strict=True))
        ]
    )


def opsloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def deploy(proj: Project, *, alias: str | None = None, version: int | None = None) -> None:
    target = {"alias": alias} if alias else {"version": version}
    doc = {
        "apiVersion": "opsloop/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT},
        "spec": {"model": "churn", **target, "port": 8601},
    }
    (proj.dir / "deploy").mkdir(exist_ok=True)
    (proj.dir / "deploy" / f"{DEPLOYMENT}.yaml").write_text(yaml.safe_dump(doc))


def test_opsloop_run_compares_on_the_deployments_labelled_traffic(healed: Project) -> None:
    deploy(healed, version=2)
    log_traffic(
        healed.store,
        churn_frame(300, seed=5, drifted=True),
        datetime.now(UTC) - timedelta(hours=2),
        prefix="d",
    )
    out = opsloop("run", "--executor", "inline", cwd=healed.dir)
    text = out.stdout
    assert out.returncode == 0, text[-3000:] + out.stderr[-3000:]
    assert "registered models:/churn/1 as challenger (a gate failed" in text, text
    assert "the labelled traffic of churn-prod" in text
    gate = next(line for line in text.splitlines() if "vs_champion (recent traffic)" in line)
    assert "FAIL" in gate and "300 recent labelled rows" in gate
    assert champion(healed) == 2


# No champion gate: only the rollback rule stands between v1 and the champion alias.
@pytest.mark.parametrize("healed", [{"roc_auc": {"min": 0.55}}], indirect=True)
def test_opsloop_run_refuses_a_rollback_and_names_the_deployment_it_would_change(
    healed: Project,
) -> None:
    deploy(healed, alias="champion")
    out = opsloop("run", "--executor", "inline", cwd=healed.dir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "churn@champion did not move" in out.stdout
    assert "moving it back to v1 is a rollback" in out.stdout
    assert "run --allow-rollback' moves it" in out.stdout
    assert champion(healed) == 2

    forced = opsloop("run", "--executor", "inline", "--allow-rollback", cwd=healed.dir)
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert "registered models:/churn/1 as champion" in forced.stdout
    assert (
        f"warning: deployment '{DEPLOYMENT}' follows churn@champion "
        f"(deploy/{DEPLOYMENT}.yaml): after the next sync it serves v1 instead of v2"
    ) in forced.stdout.replace("\n", " ")
    assert champion(healed) == 1
