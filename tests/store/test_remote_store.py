"""RemoteStore: the store's repositories over a real server, returning what the server's own
store returns and raising the same errors with the same messages."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.context import Project, open_project
from opsloop.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    StoreError,
    TrackingError,
)
from opsloop.secops.access import Identity
from opsloop.store.remote import REMOTE_METHODS, REPOSITORIES, RemoteStore, remote_method
from tests.api.remote_helpers import Served, serve


@pytest.fixture(params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Project, Served]]:
    """A server over a new project, on SQLite, then on PostgreSQL."""
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_SERVER", "OPSLOOP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    if request.param == "postgresql":
        monkeypatch.setenv("OPSLOOP_STORE_URL", request.getfixturevalue("pg_database_url"))
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: demo\n")
    project = open_project(folder)
    alice = Identity("alice", roles=frozenset({"developer"}))
    try:
        with serve(project, authenticate=lambda token: alice) as server:
            yield project, server
    finally:
        project.close()


@pytest.fixture
def remote(served: tuple[Project, Served]) -> Iterator[RemoteStore]:
    store = RemoteStore(served[1].url, "tok-abc")
    yield store
    store.close()


def test_every_listed_method_exists_and_travels() -> None:
    for repository, methods in REMOTE_METHODS.items():
        for name in methods:
            assert callable(getattr(REPOSITORIES[repository], name)), (repository, name)
            method = remote_method(repository, name)
            assert method is not None and method.action in {
                "read",
                "log",
                "register",
                "alias",
                "deploy",
            }
    assert remote_method("runs", "delete") is None
    assert remote_method("runs", "__init__") is None


def test_runs_through_the_server_are_the_servers_runs(
    served: tuple[Project, Served], remote: RemoteStore
) -> None:
    project, _ = served
    run = remote.runs.create("train", params={"lr": 0.1}, tags={"team": "a"}, heartbeat=True)
    assert run.user == "alice"  # the identity the token names, not this process's user
    assert run.pid == os.getpid() and run.host == socket.gethostname()
    remote.runs.log_params(run.id, {"depth": 3})
    remote.runs.set_tags(run.id, {"team": "b"})
    points = [("loss", 1.0 / (i + 1), i, 1_700_000_000_000 + i) for i in range(500)]
    points += [("odd", math.nan, 0, 1), ("odd", math.inf, 1, 2), ("odd", -math.inf, 2, 3)]
    remote.runs.log_metric_points(run.id, points, heartbeat=True)
    remote.runs.finish(run.id, "finished")

    local = project.store.runs.get(run.id)
    assert remote.runs.get(run.id) == local
    assert remote.runs.get(run.id[:8]).id == run.id
    assert local.params == {"lr": "0.1", "depth": "3"} and local.tags == {"team": "b"}
    assert remote.runs.count_metric_points(run.id) == 503
    history = remote.runs.metric_history(run.id, "loss")
    assert [(p.key, p.value, p.step, p.timestamp) for p in history] == points[:500]
    odd = [p.value for p in remote.runs.metric_history(run.id, "odd")]
    assert math.isnan(odd[0]) and odd[1:] == [math.inf, -math.inf]
    assert [r.id for r in remote.runs.list(name="train")] == [run.id]
    assert remote.runs.count_by_kind() == {"run": 1}
    started = project.store.events.list(object_id=run.id, kind="run.started")
    assert [e.actor for e in started] == ["alice"]


def test_errors_are_the_same_class_with_the_same_message(
    served: tuple[Project, Served], remote: RemoteStore
) -> None:
    project, _ = served
    missing = "0" * 32
    with pytest.raises(NotFoundError) as local_error:
        project.store.runs.get(missing)
    with pytest.raises(NotFoundError) as remote_error:
        remote.runs.get(missing)
    assert str(remote_error.value) == str(local_error.value) == f"run {missing} does not exist"

    run = remote.runs.create("fixed")
    remote.runs.log_params(run.id, {"lr": 0.1})
    with pytest.raises(TrackingError, match=r"already '0\.1'") as changed:
        remote.runs.log_params(run.id, {"lr": 0.2})
    assert (
        changed.value.hint == "a parameter is fixed once logged: log a new key or start a new run"
    )
    with pytest.raises(TrackingError, match="invalid end status"):
        remote.runs.finish(run.id, "weird")

    remote.models.create("churn")
    with pytest.raises(AlreadyExistsError, match="model 'churn' already exists"):
        remote.models.create("churn")
    with pytest.raises(NotFoundError, match="has no version 7") as no_version:
        remote.models.get_version("churn", 7)
    assert no_version.value.hint == "see 'opsloop models show churn'"


def test_models_and_aliases(
    served: tuple[Project, Served], remote: RemoteStore, tmp_path: Path
) -> None:
    project, _ = served
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("0.5\n")
    # The files a client uploaded; the server scans and signs them when they are registered.
    digest = project.artifacts.put_dir(tmp_path / "model")
    v1 = remote.models.create_version(
        "churn",
        artifact_digest=digest,
        tags={"k": "v"},
        events=[("model_version.note", {"x": 1})],
    )
    v2 = remote.models.create_version("churn", artifact_digest=digest, alias="staging")
    assert v2.details["scan"]["status"] == "passed" and v2.details["signature"]["key_id"]
    assert (v1.version, v2.version) == (1, 2) and v2.aliases == ["staging"]
    assert remote.models.set_alias("churn", "staging", 1) == 2
    assert remote.models.get_version_by_alias(
        "churn", "staging"
    ) == project.store.models.get_version("churn", 1)
    assert remote.models.aliases() == {("churn", "staging"): 1}
    assert remote.models.list() == project.store.models.list()
    assert [v.version for v in remote.models.list_versions("churn")] == [2, 1]
    remote.models.delete_alias("churn", "staging")
    assert remote.models.get("churn").aliases == {}
    notes = project.store.events.list(kind="model_version.note")
    assert [(e.object_id, e.actor, e.details) for e in notes] == [("churn/1", "alice", {"x": 1})]


def test_a_method_off_the_list_is_refused_here(remote: RemoteStore) -> None:
    with pytest.raises(ConfigError, match=r"store\.runs\.delete does not work in remote mode"):
        remote.runs.delete("x")
    with pytest.raises(ConfigError, match="has no engine here"):
        _ = remote.engine
    with pytest.raises(ConfigError, match="has no database here"):
        _ = remote.db  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = remote.runs.no_such_method
    with pytest.raises(TypeError):
        remote.runs.get()  # the same signature as the repository's


def test_an_unreachable_server_is_a_store_error_naming_it_not_the_token() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    store = RemoteStore(f"http://127.0.0.1:{port}", "s3cr3t-token-value")
    try:
        with pytest.raises(StoreError) as failed:
            store.runs.get("abc")
    finally:
        store.close()
    assert f"http://127.0.0.1:{port}" in str(failed.value)
    assert "s3cr3t" not in str(failed.value) and "s3cr3t" not in repr(failed.value.__cause__)


def test_a_server_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPSLOOP_SERVER"):
        RemoteStore("ftp://host/x")
    with pytest.raises(ConfigError, match=r"\*\*\*"):
        RemoteStore("postgresql://u:hunter22@host/db")
