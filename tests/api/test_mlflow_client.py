"""MLflow's real client against a running opsloop server: tracking, artifacts, registry.

Each test starts the control-plane app under uvicorn on 127.0.0.1, points
``MLFLOW_TRACKING_URI`` at it and uses ``mlflow`` as an MLflow user would; then it reads
opsloop's store to check that what MLflow logged is there as opsloop's own records.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import opsloop
from tests.api.mlflow_server import Running, mlflow_env, project_at, run_server

pytestmark = [
    # MLflow's client warns about its own deprecations and optional extras it cannot find.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Running]:
    """A server over a SQLite project, with MLflow's client pointed at it."""
    project = project_at(tmp_path / "proj", f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with run_server(project) as running, mlflow_env(running.url):
            yield running
    finally:
        project.close()


@pytest.fixture
def any_server(tmp_path: Path, store_url: str) -> Iterator[Running]:
    """A server over each store backend in turn (SQLite, PostgreSQL)."""
    project = project_at(tmp_path / "proj", store_url)
    try:
        with run_server(project) as running, mlflow_env(running.url):
            yield running
    finally:
        project.close()


def test_experiments_create_get_search(sqlite_server: Running) -> None:
    client = MlflowClient()
    exp_id = client.create_experiment("churn", tags={"team": "growth"})
    exp = client.get_experiment(exp_id)
    assert (exp.name, exp.tags["team"], exp.lifecycle_stage) == ("churn", "growth", "active")
    assert client.get_experiment_by_name("churn").experiment_id == exp_id
    assert client.get_experiment_by_name("nope") is None
    names = {e.name for e in client.search_experiments()}
    assert names == {"Default", "churn"}
    found = client.search_experiments(filter_string="name = 'churn'")
    assert [e.experiment_id for e in found] == [exp_id]
    with pytest.raises(MlflowException) as err:
        client.create_experiment("churn")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.set_experiment_tag(exp_id, "owner", "ana")
    client.rename_experiment(exp_id, "churn-v2")
    exp = client.get_experiment(exp_id)
    assert (exp.name, exp.tags["owner"]) == ("churn-v2", "ana")
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert {e.name for e in client.search_experiments()} == {"Default"}
    # An experiment outlives the server: it is in the store's audit log.
    store = sqlite_server.project.store
    assert [e.kind for e in store.events.list(object_type="mlflow.experiment")][:1] == [
        "mlflow.experiment.created"
    ]


def test_core_logging_on_every_store(any_server: Running) -> None:
    """Params, metrics, batches, tags and metric history land in opsloop's store."""
    mlflow.set_experiment("core")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 3, "loss": "log"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("stage", "dev")
        ts = int(time.time() * 1000)
        MlflowClient().log_batch(
            run.info.run_id,
            metrics=[Metric("acc", i / 1000, ts, i) for i in range(1000)],
            params=[Param("batch", "1000")],
            tags=[RunTag("kind", "batch")],
        )
        mlflow.log_metric("odd", math.nan)
    run_id = run.info.run_id
    client = MlflowClient()
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "first"
    assert got.data.params == {"alpha": "0.5", "depth": "3", "loss": "log", "batch": "1000"}
    assert got.data.tags["stage"] == "dev" and got.data.tags["kind"] == "batch"
    assert got.data.metrics["loss"] == pytest.approx(0.2)
    assert math.isnan(got.data.metrics["odd"])
    history = client.get_metric_history(run_id, "acc")
    assert [m.step for m in history] == list(range(1000))
    assert history[999].value == pytest.approx(0.999)
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == pytest.approx(
        [1.0, 0.5, 1 / 3, 0.25, 0.2]
    )

    client.delete_tag(run_id, "kind")
    assert "kind" not in client.get_run(run_id).data.tags

    # The same run, as opsloop sees it.
    store = any_server.project.store
    mine = store.runs.get(run_id)
    assert (mine.name, mine.status, mine.project) == ("first", "finished", "mlflow-compat")
    assert mine.params["alpha"] == "0.5"
    assert store.runs.count_metric_points(run_id) == 1000 + 5 + 1
    assert run_id in [r.id for r in store.runs.list()]
    # A param cannot change once logged, in MLflow as in opsloop.
    with pytest.raises(MlflowException) as err:
        client.log_param(run_id, "alpha", "0.7")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_batch_is_one_transaction(sqlite_server: Running) -> None:
    """A batch with one bad point stores none of its points."""
    client = MlflowClient()
    run = client.create_run("0")
    good = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(999)]
    bad = [*good, {"key": "m", "value": "not a number", "timestamp": 1, "step": 999}]
    resp = httpx.post(
        f"{sqlite_server.url}/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run.info.run_id, "metrics": bad},
    )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert sqlite_server.project.store.runs.count_metric_points(run.info.run_id) == 0
    client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 1, i) for i in range(1000)])
    assert sqlite_server.project.store.runs.count_metric_points(run.info.run_id) == 1000


def test_search_runs_filter_and_order(sqlite_server: Running) -> None:
    exp_id = mlflow.set_experiment("search").experiment_id
    for lr, acc in [(0.1, 0.7), (0.01, 0.9), (0.001, 0.8)]:
        with mlflow.start_run():
            mlflow.log_param("lr", lr)
            mlflow.log_metric("acc", acc)
            mlflow.set_tag("family", "tree" if acc > 0.75 else "linear")
    # A run of another experiment is not found.
    with mlflow.start_run(experiment_id="0"):
        mlflow.log_metric("acc", 0.99)
    client = MlflowClient()
    runs = client.search_runs(
        [exp_id],
        filter_string="metrics.acc > 0.75 and tags.family = 'tree'",
        order_by=["metrics.acc DESC"],
    )
    assert [r.data.metrics["acc"] for r in runs] == [0.9, 0.8]
    assert [r.data.params["lr"] for r in runs] == ["0.01", "0.001"]
    frame = mlflow.search_runs([exp_id], order_by=["params.lr ASC"])
    assert list(frame["params.lr"]) == ["0.001", "0.01", "0.1"]
    assert len(client.search_runs([exp_id], filter_string="params.lr = '0.1'")) == 1
    assert len(client.search_runs([exp_id], filter_string="attributes.status = 'FINISHED'")) == 3


def test_artifacts_round_trip(sqlite_server: Running, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.txt").write_text("all good\n")
    (tmp_path / "out" / "sub").mkdir()
    (tmp_path / "out" / "sub" / "data.csv").write_text("a,b\n1,2\n")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "out" / "report.txt"))
        mlflow.log_artifacts(str(tmp_path / "out"), artifact_path="bundle")
        mlflow.log_text("hello", "notes/hello.txt")
    client = MlflowClient()
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    listed = {f.path: f.is_dir for f in client.list_artifacts(run.info.run_id)}
    assert listed == {"bundle": True, "notes": True, "report.txt": False}
    assert {f.path for f in client.list_artifacts(run.info.run_id, "bundle")} == {
        "bundle/report.txt",
        "bundle/sub",
    }
    dest = Path(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "dl"))
    )
    assert (dest / "report.txt").read_text() == "all good\n"
    assert (dest / "bundle" / "sub" / "data.csv").read_text() == "a,b\n1,2\n"
    assert (dest / "notes" / "hello.txt").read_text() == "hello"
    # In opsloop: artifacts of the run, the bytes in the content-addressed store.
    project = sqlite_server.project
    arts = {a.path: a for a in project.store.runs.list_artifacts(run.info.run_id)}
    assert set(arts) == {
        "report.txt",
        "bundle/report.txt",
        "bundle/sub/data.csv",
        "notes/hello.txt",
    }
    assert project.artifacts.get_bytes(arts["notes/hello.txt"].digest) == b"hello"


def test_sklearn_log_register_alias_load(sqlite_server: Running) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.set_experiment("iris")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model")
    logged = mlflow.get_logged_model(info.model_id)
    assert (logged.status.to_proto(), logged.source_run_id) == (
        mlflow.entities.LoggedModelStatus.READY.to_proto(),
        run.info.run_id,
    )
    found = mlflow.search_logged_models(experiment_ids=[logged.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [info.model_id]
    version = mlflow.register_model(info.model_uri, "iris-clf")
    assert (version.name, version.version, version.status) == ("iris-clf", "1", "READY")
    client = MlflowClient()
    client.set_registered_model_alias("iris-clf", "champion", version.version)
    by_alias = client.get_model_version_by_alias("iris-clf", "champion")
    assert by_alias.version == "1" and by_alias.aliases == ["champion"]
    loaded = mlflow.sklearn.load_model("models:/iris-clf@champion")
    assert (loaded.predict(x[:20]) == model.predict(x[:20])).all()
    assert client.get_registered_model("iris-clf").aliases == {"champion": "1"}
    # A second registration of an existing name is its next version.
    assert mlflow.register_model(info.model_uri, "iris-clf").version == "2"
    assert client.get_registered_model("iris-clf").latest_versions[0].version == "2"

    # In opsloop's registry: a version from MLflow, marked as such, with a folder artifact.
    project = sqlite_server.project
    mine = project.store.models.get_version("iris-clf", 1)
    assert mine.details["origin"] == "mlflow"
    assert mine.source == info.model_uri
    assert mine.run_id == run.info.run_id
    assert project.store.models.get_version_by_alias("iris-clf", "champion").version == 1
    manifest = project.artifacts.get_manifest(mine.artifact_digest)
    assert "MLmodel" in manifest.files
    # The logged model is an opsloop run of kind logged-model under the run that logged it.
    logged = [
        r for r in project.store.runs.list(kind="logged-model") if r.parent_id == run.info.run_id
    ]
    assert len(logged) == 1 and logged[0].status == "finished"


def test_unknown_things_are_resource_does_not_exist(sqlite_server: Running) -> None:
    client = MlflowClient()
    for call in (
        lambda: client.get_run("0" * 32),
        lambda: client.log_metric("0" * 32, "m", 1.0),
        lambda: client.get_experiment("12345"),
        lambda: client.get_registered_model("nope"),
        lambda: client.get_model_version_by_alias("nope", "champion"),
    ):
        with pytest.raises(MlflowException) as err:
            call()
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST", err.value


def test_runs_appear_next_to_opsloops_own(sqlite_server: Running) -> None:
    project = sqlite_server.project
    with opsloop.use_project(project), opsloop.start_run(name="native") as native:
        opsloop.log_metric("acc", 0.5)
    with mlflow.start_run(run_name="from-mlflow") as run:
        mlflow.log_metric("acc", 0.6)
    listed = {r.name: r.id for r in project.store.runs.list()}
    assert listed == {"native": native.id, "from-mlflow": run.info.run_id}
    # opsloop's own runs show to MLflow in the Default experiment.
    seen: Any = MlflowClient().search_runs(["0"])
    assert {r.info.run_name for r in seen} == {"native", "from-mlflow"}


def test_opsloop_runs_list_shows_mlflow_runs(sqlite_server: Running) -> None:
    with mlflow.start_run(run_name="shown-in-cli") as run:
        mlflow.log_metric("acc", 0.875)
    env = {**os.environ, "COLUMNS": "200"}
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "-C", str(sqlite_server.project.dir), "runs", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "shown-in-cli" in out.stdout and run.info.run_id[:8] in out.stdout
