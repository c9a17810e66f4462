"""The real remediation actions: retrain through the lifecycle on the churn example, and
canary / promote / rollback through Git commits against a real model server."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from opsloop.aiops.actions import ActionContext, ActionResult
from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.executors import WebhookExecutor
from opsloop.aiops.incidents import IncidentInfo, get_incident, ingest_alerts
from opsloop.aiops.lineage import LineageGraph
from opsloop.context import Project, open_project, set_current_project
from opsloop.errors import AIOpsError, DataError, PermissionDeniedError
from opsloop.gitops import Reconciler, parse_document, promote
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.lifecycle import run_lifecycle
from opsloop.lifecycle.quickstart import prepare_project
from opsloop.loop.actions import LoopExecutor, build_retrain_table, default_executor
from opsloop.loop.traffic import drifted_sample
from opsloop.registry import load_model, register_model
from opsloop.spec.remediation import CanarySettings, RetrainSettings

DEPLOYMENT = "churn-prod"
FAST = {"trials": 2, "timeout_s": 10}
IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The churn example with its lifecycle run once (v1 champion), as a Git repository,
    plus a second version of the same model (v2) to canary."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
            mp.delenv(var, raising=False)
        folder, _ = prepare_project(tmp_path_factory.mktemp("actions") / "churn")
        mp.chdir(folder)
        proj = open_project(folder)
        set_current_project(proj)
        try:
            outcome = run_lifecycle(proj, overrides=FAST, progress=False)
            assert outcome.registration and outcome.registration["alias"] == "champion"
            data = pd.read_parquet(folder / "data" / "customers.parquet")
            example = data.drop(columns=["customer_id", "signup_date", "churned"]).head(5)
            model = load_model("models:/churn/1").model
            register_model("churn", model, input_example=example)
            (folder / ".gitignore").write_text(".opsloop/\ndata/retrain/\n")
            git(folder, "init", "-q", "-b", "main")
            git(folder, "add", "-A")
            git(folder, "commit", "-q", "-m", "init")
            yield proj
        finally:
            proj.close()
            set_current_project(None)


def incident_on(
    project: Project, deployment: str = DEPLOYMENT, *, at: datetime | None = None
) -> IncidentInfo:
    alert = AlertIn(
        name=f"quality-{uuid.uuid4().hex[:6]}",
        labels={"deployment": deployment},
        starts_at=at or datetime.now(UTC),
        severity="critical",
    )
    (inc_id,) = ingest_alerts(project.store, [alert], LineageGraph([])).opened
    return get_incident(project.store, inc_id)


def log_traffic(
    project: Project,
    deployment: str,
    inputs: pd.DataFrame,
    labels: Any,
    *,
    at: datetime,
    labelled: int | None = None,
) -> list[str]:
    """Write predictions (one row each) and the labels of the first ``labelled`` of them."""
    records = inputs.to_dict(orient="records")
    ids = [f"{deployment}-{uuid.uuid4().hex}" for _ in records]
    project.store.predictions.log(
        [
            {
                "request_id": rid,
                "deployment": deployment,
                "model_name": "churn",
                "model_version": "1",
                "time": at + timedelta(milliseconds=i),
                "latency_ms": 1.0,
                "shadow": False,
                "inputs": {k: [None if pd.isna(v) else v] for k, v in row.items()},
                "outputs": {"values": [[0.5, 0.5]]},
            }
            for i, (rid, row) in enumerate(zip(ids, records, strict=True))
        ]
    )
    n = len(ids) if labelled is None else labelled
    project.store.predictions.log_feedback(
        [
            {"request_id": rid, "deployment": deployment, "label": {"value": int(y)}}
            for rid, y in zip(ids[:n], labels[:n], strict=True)
        ]
    )
    return ids


def test_retrain_table_is_the_labelled_window_in_the_training_data_types(
    churn: Project,
) -> None:
    deployment = "table-dep"
    now = datetime.now(UTC)
    inputs, labels = drifted_sample(
        pd.read_parquet(churn.dir / "data" / "customers.parquet"), 60, 1.0, seed=3
    )
    old = log_traffic(churn, deployment, inputs.head(10), labels[:10], at=now - timedelta(hours=3))
    ids = log_traffic(churn, deployment, inputs, labels, at=now - timedelta(minutes=5), labelled=50)

    table = build_retrain_table(churn, deployment, now - timedelta(hours=1), now)
    original = pd.read_parquet(churn.dir / "data" / "customers.parquet")
    assert list(table.columns) == list(original.columns)
    assert dict(table.dtypes) == dict(original.dtypes)
    assert len(table) == 50  # the unlabelled 10 and the old hour are left out
    assert table["customer_id"].tolist() == [f"req-{rid}-0" for rid in ids[:50]]
    assert table["churned"].tolist() == [int(y) for y in labels[:50]]
    assert table["tenure_months"].tolist() == inputs["tenure_months"].head(50).tolist()
    assert table["signup_date"].min() >= (now - timedelta(minutes=6)).replace(tzinfo=None)
    assert not set(old) & {c[4:] for c in table["customer_id"]}

    both = build_retrain_table(
        churn, deployment, now - timedelta(hours=1), now, include_original=True
    )
    assert len(both) == len(original) + 50

    with pytest.raises(DataError, match="no labelled prediction"):
        build_retrain_table(churn, deployment, now - timedelta(days=3), now - timedelta(days=2))


@pytest.mark.slow
def test_retrain_refused_by_the_gates_moves_no_alias(churn: Project) -> None:
    deployment = "noise-dep"
    data = pd.read_parquet(churn.dir / "data" / "customers.parquet")
    inputs, _ = drifted_sample(data, 1100, 1.0, seed=5)
    # Labels drawn at random: nothing to learn, so roc_auc stays under the 0.80 gate.
    noise = np.random.default_rng(5).integers(0, 2, len(inputs))
    log_traffic(churn, deployment, inputs, noise, at=datetime.now(UTC) - timedelta(minutes=2))
    champion = churn.store.models.get_version_by_alias("churn", "champion")
    incident = incident_on(churn, deployment)

    with pytest.raises(AIOpsError, match=r"the gates refused churn v\d+ .*roc_auc"):
        LoopExecutor(churn).retrain(
            ActionContext.for_incident(
                incident, "retrain", settings=RetrainSettings(window_s=600, overrides=FAST)
            )
        )
    assert churn.store.models.get_version_by_alias("churn", "champion").version == champion.version
    assert (churn.dir / "data" / "retrain" / f"incident-{incident.id}.parquet").is_file()


def test_a_late_retrain_reads_the_traffic_before_the_incident_evidence(churn: Project) -> None:
    # The alert's data is an hour old (an approval that waited, a slow pass): the window
    # counts back from it, not from now, so the traffic that showed the problem is read.
    deployment = "late-dep"
    data = pd.read_parquet(churn.dir / "data" / "customers.parquet")
    inputs, _ = drifted_sample(data, 1100, 1.0, seed=6)
    noise = np.random.default_rng(6).integers(0, 2, len(inputs))
    evidence = datetime.now(UTC) - timedelta(hours=1)
    log_traffic(churn, deployment, inputs, noise, at=evidence - timedelta(minutes=2))
    incident = incident_on(churn, deployment, at=evidence)

    with pytest.raises(AIOpsError, match="the gates refused"):
        LoopExecutor(churn).retrain(
            ActionContext.for_incident(
                incident, "retrain", settings=RetrainSettings(window_s=600, overrides=FAST)
            )
        )
    table = pd.read_parquet(churn.dir / "data" / "retrain" / f"incident-{incident.id}.parquet")
    assert len(table) == 1100


def test_a_retrain_since_the_incident_reads_no_traffic_from_before_its_first_alert(
    churn: Project,
) -> None:
    # Traffic before the problem began (old relation), a gap with none (a pass that ran
    # late), then the drifted traffic the alert saw: a window long enough to reach over the
    # gap stops at the alert's first bad point.
    deployment = "since-dep"
    data = pd.read_parquet(churn.dir / "data" / "customers.parquet")
    old, _ = drifted_sample(data, 300, 0.0, seed=8)
    new, _ = drifted_sample(data, 1100, 1.0, seed=9)
    began = datetime.now(UTC) - timedelta(minutes=10)
    log_traffic(churn, deployment, old, np.zeros(len(old)), at=began - timedelta(minutes=3))
    log_traffic(churn, deployment, new, np.ones(len(new)), at=began)
    incident = incident_on(churn, deployment, at=began)
    settings = {"window_s": 3600, "overrides": FAST}
    path = churn.dir / "data" / "retrain" / f"incident-{incident.id}.parquet"
    context = ActionContext.for_incident

    # Labels all alike: nothing to learn, the gates refuse; the table is what is read.
    with pytest.raises(AIOpsError):
        LoopExecutor(churn).retrain(
            context(incident, "retrain", settings=RetrainSettings(since_incident=True, **settings))
        )
    assert len(pd.read_parquet(path)) == 1100
    with pytest.raises(AIOpsError):
        LoopExecutor(churn).retrain(
            context(incident, "retrain", settings=RetrainSettings(**settings))
        )
    assert len(pd.read_parquet(path)) == 1400


@pytest.mark.slow
def test_retrain_trains_on_the_drifted_labels_and_registers_a_champion(churn: Project) -> None:
    deployment = "drift-dep"
    data = pd.read_parquet(churn.dir / "data" / "customers.parquet")
    inputs, labels = drifted_sample(data, 1200, 1.0, seed=7)
    log_traffic(churn, deployment, inputs, labels, at=datetime.now(UTC) - timedelta(minutes=2))
    before = churn.store.models.get_version_by_alias("churn", "champion").version
    incident = incident_on(churn, deployment)

    context = ActionContext.for_incident(
        incident, "retrain", settings=RetrainSettings(window_s=600, overrides=FAST)
    )
    assert context.deployment == deployment
    result = LoopExecutor(churn).retrain(context)
    assert result.details["gates_passed"] is True and result.details["rows"] == 1200
    assert result.model == "churn" and result.version is not None and result.version > before
    assert result.details["source"] == f"data/retrain/incident-{incident.id}.parquet"
    assert result.details["metrics"]["roc_auc"] >= 0.8
    champion = churn.store.models.get_version_by_alias("churn", "champion")
    assert champion.version == result.version
    assert "trained on 1200 rows" in result.did


def _doc(project: Project) -> dict[str, Any]:
    text = git(project.dir, "show", f"HEAD:deploy/{DEPLOYMENT}.yaml")
    return parse_document(text, "d").to_data()["spec"]  # type: ignore[no-any-return]


def _table(base: str) -> dict[str, Any]:
    models: dict[str, Any] = httpx.get(f"{base}/v1/admin/models", timeout=10).json()["models"]
    return models["churn"]


@pytest.mark.slow
def test_canary_promote_and_rollback_through_git_and_a_real_server(churn: Project) -> None:
    runtime = LocalRuntime(churn.dir, ready_timeout_s=90, stop_timeout_s=10)
    try:
        promote("churn", to=DEPLOYMENT, version=1, alias=None, project=churn)
        outcome = Reconciler(churn, runtime=runtime).sync([DEPLOYMENT]).outcome(DEPLOYMENT)
        assert outcome.endpoints, outcome.reason
        base = outcome.endpoints[0]
        incident = incident_on(churn)
        executor = LoopExecutor(churn, runtime=runtime, poll_s=0.1, canary_timeout_s=0.5)
        retrained = {"retrain": ActionResult(did="retrained", model="churn", version=2)}

        def canary(**settings: Any) -> ActionResult:
            return executor.canary(
                ActionContext.for_incident(
                    incident,
                    "canary",
                    settings=CanarySettings(weight=25, hold_s=0.2, **settings),
                    previous=retrained,
                )
            )

        # A canary that cannot reach its requests is withdrawn before it returns.
        failed = canary(min_requests=10**6)
        assert failed.details["held"] is False
        assert "fewer than min_requests" in failed.details["reason"]
        withdrawn = failed.details["withdrawn"]["commit"]
        assert len(failed.commits) == 2 and failed.commits[1] == withdrawn
        assert "traffic" not in _doc(churn) and _doc(churn)["version"] == 1
        assert _table(base)["versions"] == ["1"]

        held = canary(min_requests=0)
        assert held.details["held"] is True
        assert (held.details["old_version"], held.version) == (1, 2) and len(held.commits) == 1
        spec = _doc(churn)
        assert {t["version"]: t["weight"] for t in spec["traffic"]} == {1: 75, 2: 25}
        live = _table(base)
        assert {k: float(v) for k, v in live["traffic"].items()} == {"1": 75.0, "2": 25.0}

        promoted = executor.promote(
            ActionContext.for_incident(incident, "promote", previous={"canary": held})
        )
        assert (promoted.version, promoted.details["previous_version"]) == (2, 1)
        assert promoted.commits == (git(churn.dir, "rev-parse", "HEAD"),)
        assert _doc(churn)["version"] == 2 and "traffic" not in _doc(churn)
        assert _table(base)["versions"] == ["2"]

        rolled = executor.rollback(ActionContext.for_incident(incident, "rollback"))
        assert rolled.details["previous_version"] == 2 and rolled.commits
        assert git(churn.dir, "log", "-1", "--format=%s") == rolled.details["message"]
        # The remediation engine acts as its own service account: it authors the commits and
        # is the actor of what the store records for them.
        assert git(churn.dir, "log", "-1", "--format=%an") == "opsloop (opsloop-remediation)"
        changes = churn.store.events.list(object_type="deployment", object_id=DEPLOYMENT)
        assert changes and changes[-1].actor == "opsloop-remediation"
        assert changes[-1].source == "loop"
        assert {k: float(v) for k, v in _table(base)["traffic"].items()} == {"1": 75.0, "2": 25.0}
    finally:
        runtime.stop_all()


def test_default_executor_delegates_the_loop_actions(churn: Project) -> None:
    executor = default_executor(churn)
    assert isinstance(executor, WebhookExecutor)
    assert isinstance(executor.delegate, LoopExecutor)
    assert executor.delegate.project is churn


def test_actions_need_a_deployment(churn: Project) -> None:
    incident = incident_on(churn, "some-dep")
    with pytest.raises(AIOpsError, match="names no deployment"):
        LoopExecutor(churn).promote(
            ActionContext.for_incident(incident, "promote", deployment=None)
        )


def test_the_remediation_account_needs_the_role_its_actions_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "proj"
    (folder / "deploy").mkdir(parents=True)
    (folder / "opsloop.yaml").write_text(
        "project: p\naccess: {remediation: {account: watcher, role: viewer}}\n"
    )
    (folder / "deploy" / "web.yaml").write_text(
        "apiVersion: opsloop/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {model: churn, version: 1, port: 18999}\n"
    )
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "init")
    monkeypatch.chdir(folder)
    proj = open_project(folder)
    try:
        incident = incident_on(proj, "web")
        head = git(folder, "rev-parse", "HEAD")
        with pytest.raises(PermissionDeniedError, match="watcher may not deploy on deployment"):
            LoopExecutor(proj).rollback(ActionContext.for_incident(incident, "rollback"))
        with pytest.raises(PermissionDeniedError, match="watcher may not register"):
            LoopExecutor(proj).retrain(ActionContext.for_incident(incident, "retrain"))
        assert git(folder, "rev-parse", "HEAD") == head
    finally:
        proj.close()
