"""Who may do what through the MLflow API: the same roles as opsloop's own API, audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from opsloop.errors import AuthenticationError
from opsloop.secops.access import Grant, Identity
from tests.api.mlflow_server import Running, mlflow_env, project_at, run_server

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

PEOPLE = {
    "t-vera": Identity("vera", roles=frozenset({"viewer"})),
    "t-dev": Identity("dev", roles=frozenset({"developer"})),
    "t-ops": Identity("ops", roles=frozenset({"deployer"})),
    "t-owner": Identity(
        "owner", roles=frozenset({"developer"}), grants=(Grant("deployer", "model", "a"),)
    ),
}


def authenticate(token: str | None) -> Identity:
    if token is None or token not in PEOPLE:
        raise AuthenticationError("a valid bearer token is required")
    return PEOPLE[token]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    project = project_at(tmp_path / "proj", f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with run_server(project, authenticate=authenticate) as running, mlflow_env(running.url):
            yield running
    finally:
        project.close()


def as_(monkeypatch: pytest.MonkeyPatch, token: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient()


def code_of(call: object) -> str:
    with pytest.raises(MlflowException) as err:
        call()  # type: ignore[operator]
    return str(err.value.error_code)


def test_no_token_is_unauthenticated(server: Running) -> None:
    resp = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get?experiment_id=0")
    assert resp.status_code == 401
    assert resp.json()["error_code"] == "UNAUTHENTICATED"
    resp = httpx.get(
        f"{server.url}/api/2.0/mlflow/experiments/get?experiment_id=0",
        headers={"Authorization": "Bearer wrong"},
    )
    assert resp.status_code == 401


def test_viewer_reads_but_does_not_write(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = as_(monkeypatch, "t-dev")
    run_id = dev.create_run("0").info.run_id
    vera = as_(monkeypatch, "t-vera")
    assert vera.get_run(run_id).info.run_id == run_id
    assert [e.name for e in vera.search_experiments()] == ["Default"]
    assert code_of(lambda: vera.create_run("0")) == "PERMISSION_DENIED"
    assert code_of(lambda: vera.log_metric(run_id, "m", 1.0)) == "PERMISSION_DENIED"
    assert code_of(lambda: vera.create_experiment("x")) == "PERMISSION_DENIED"
    assert code_of(lambda: vera.create_registered_model("m")) == "PERMISSION_DENIED"
    resp = httpx.put(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/x.txt",
        content=b"x",
        headers={"Authorization": "Bearer t-vera"},
    )
    assert resp.status_code == 403 and resp.json()["error_code"] == "PERMISSION_DENIED"
    assert server.project.store.runs.list_artifacts(run_id) == []


def test_protected_alias_needs_a_deployer(
    server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = as_(monkeypatch, "t-dev")
    (tmp_path / "w.txt").write_text("weights")
    for name in ("a", "b"):
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(tmp_path / "w.txt"), "model")
        dev.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    dev.set_registered_model_alias("a", "staging", "1")
    assert code_of(lambda: dev.set_registered_model_alias("a", "champion", "1")) == (
        "PERMISSION_DENIED"
    )
    owner = as_(monkeypatch, "t-owner")
    owner.set_registered_model_alias("a", "champion", "1")  # a deployer of model a only
    assert code_of(lambda: owner.set_registered_model_alias("b", "champion", "1")) == (
        "PERMISSION_DENIED"
    )
    as_(monkeypatch, "t-ops").set_registered_model_alias("b", "champion", "1")
    assert server.project.store.models.aliases() == {
        ("a", "staging"): 1,
        ("a", "champion"): 1,
        ("b", "champion"): 1,
    }


def test_writes_are_audited_as_the_caller(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = as_(monkeypatch, "t-dev")
    exp_id = dev.create_experiment("audited")
    run_id = dev.create_run(exp_id).info.run_id
    dev.set_terminated(run_id)
    events = server.project.store.events.list()
    by_kind = {(e.kind, e.object_id): e.actor for e in events}
    assert by_kind[("mlflow.experiment.created", exp_id)] == "dev"
    assert by_kind[("run.started", run_id)] == "dev"
    assert by_kind[("run.finished", run_id)] == "dev"


def test_an_mlflow_version_is_scanned_and_signed_and_a_malicious_one_never_admitted(
    server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = as_(monkeypatch, "t-ops")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "weights.txt").write_text("weights")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    for name in ("good", "evil"):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(tmp_path / name), "model")
        ops.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    good = server.project.store.models.get_version("good", 1).details
    assert good["scan"]["status"] == "passed" and good["signature"]["bundle_digest"]
    ops.set_registered_model_alias("good", "champion", "1")
    evil = server.project.store.models.get_version("evil", 1).details
    assert evil["scan"]["status"] == "failed" and evil["scan"]["findings"]["critical"] >= 1
    with pytest.raises(MlflowException, match="scan failed"):
        ops.set_registered_model_alias("evil", "champion", "1")
    assert server.project.store.models.aliases() == {("good", "champion"): 1}
    assert server.project.store.events.list(kind="security.refused")
