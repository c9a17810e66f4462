"""The server side of remote mode over a real server: the store RPC's access control and
problems, the blobs, and the switch that makes a project remote."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsloop.artifacts.remote import RemoteArtifactStore
from opsloop.context import Project, open_project
from opsloop.errors import (
    AuthenticationError,
    DigestMismatchError,
    NotFoundError,
    PermissionDeniedError,
    SecurityError,
)
from opsloop.registry.signing import sign_version
from opsloop.secops import KeyRing
from opsloop.secops.access import Grant, Identity
from opsloop.store.remote import RemoteStore
from opsloop.tracking.buffer import MetricBuffer
from tests.api.remote_helpers import Served, serve

TOKENS = {
    "viewer-token": Identity("vera", roles=frozenset({"viewer"})),
    "dev-token": Identity("dan", roles=frozenset({"developer"})),
    "deployer-token": Identity("dora", roles=frozenset({"deployer"})),
    "churn-deployer-token": Identity(
        "carl",
        roles=frozenset({"developer"}),
        grants=(Grant("deployer", "model", "churn"),),
    ),
}


def _upload(project: Project, folder: Path, *, signed: bool = True) -> tuple[str, dict]:
    """A model folder in the project's artifact store, signed with the project's key (what a
    remote client uploads and claims); returns its digest and the details to register."""
    digest = project.artifacts.put_dir(folder)
    if not signed:
        return digest, {}
    record = sign_version(folder, project.artifacts, keyring=KeyRing(project.name))
    return digest, {"signature": record}


@pytest.fixture
def evil_files(tmp_path: Path) -> Path:
    """A model folder whose pickle runs a shell command when loaded."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    return folder


@pytest.fixture
def model_files(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("0.5 0.25\n")
    return folder


def _authenticate(token: str | None) -> Identity:
    if token is None or token not in TOKENS:
        raise AuthenticationError("unknown or missing token", hint="see 'opsloop login'")
    return TOKENS[token]


@pytest.fixture
def served(project: Project) -> Iterator[Served]:
    with serve(project, authenticate=_authenticate) as server:
        yield server


@pytest.fixture
def as_token(served: Served) -> Iterator[dict[str, RemoteStore]]:
    stores = {token: RemoteStore(served.url, token) for token in TOKENS}
    yield stores
    for store in stores.values():
        store.close()


def _post(served: Served, path: str, body: bytes, token: str = "dev-token") -> httpx.Response:
    return httpx.post(
        f"{served.url}/api/v1/store/{path}",
        content=body,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )


def test_a_missing_run_is_a_404_problem_naming_the_error(served: Served) -> None:
    response = _post(served, "runs/get", b'{"run_id": "feedbeef"}')
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["error"] == "NotFoundError" and body["detail"] == "run feedbeef does not exist"
    assert body["status"] == 404 and body["data_error"] is False


def test_a_viewer_reads_but_may_not_write(
    project: Project, as_token: dict[str, RemoteStore], model_files: Path
) -> None:
    digest, _ = _upload(project, model_files)
    run = as_token["dev-token"].runs.create("train")
    viewer = as_token["viewer-token"]
    assert viewer.runs.get(run.id).id == run.id
    with pytest.raises(PermissionDeniedError, match="vera may not log: it needs the developer"):
        viewer.runs.create("nope")
    with pytest.raises(PermissionDeniedError):
        viewer.runs.log_metric_points(run.id, [("loss", 1.0, 0, 1)])
    with pytest.raises(PermissionDeniedError, match="may not register on model 'churn'"):
        viewer.models.create_version("churn", artifact_digest=digest)
    assert project.store.runs.count_metric_points(run.id) == 0
    assert [r.name for r in project.store.runs.list()] == ["train"]


def test_protected_aliases_need_a_deployer(
    project: Project, as_token: dict[str, RemoteStore], model_files: Path
) -> None:
    dev = as_token["dev-token"]
    digest, admitted = _upload(project, model_files)
    dev.models.create_version("churn", artifact_digest=digest, details=admitted)
    dev.models.create_version("other", artifact_digest=digest, details=admitted)
    assert dev.models.set_alias("churn", "staging", 1) is None
    with pytest.raises(PermissionDeniedError, match=r"alias\.move_protected on model 'churn'"):
        dev.models.set_alias("churn", "champion", 1)
    with pytest.raises(PermissionDeniedError, match=r"alias\.move_protected"):
        dev.models.create_version(
            "churn", artifact_digest=digest, details=admitted, alias="champion"
        )
    assert [v.version for v in project.store.models.list_versions("churn")] == [1]
    # A deployer of churn only may move churn's champion, and no other model's.
    carl = as_token["churn-deployer-token"]
    assert carl.models.set_alias("churn", "champion", 1) is None
    with pytest.raises(PermissionDeniedError, match="on model 'other'"):
        carl.models.set_alias("other", "champion", 1)
    assert as_token["deployer-token"].models.set_alias("other", "champion", 1) is None
    moved = project.store.events.list(kind="alias.set")
    assert [(e.actor, e.details["alias"]) for e in moved] == [
        ("dan", "staging"),
        ("carl", "champion"),
        ("dora", "champion"),
    ]


def test_the_server_enforces_admission_itself(
    project: Project, as_token: dict[str, RemoteStore], evil_files: Path
) -> None:
    dev = as_token["dev-token"]
    digest, _ = _upload(project, evil_files, signed=False)
    refused = dev.models.create_version("churn", artifact_digest=digest)
    # A client that skips its own admission check still cannot alias a refused version.
    with pytest.raises(SecurityError, match="cannot become churn@staging: its model scan failed"):
        dev.models.set_alias("churn", "staging", refused.version)
    with pytest.raises(SecurityError, match="new version cannot become churn@staging"):
        dev.models.create_version("churn", artifact_digest=digest, alias="staging")
    assert project.store.models.aliases() == {}
    assert [v.version for v in project.store.models.list_versions("churn")] == [1]
    refused = project.store.events.list(kind="security.refused")
    assert [e.actor for e in refused] == ["dan", "dan"]
    # Nor can it rewrite what the version recorded when it was registered.
    with pytest.raises(PermissionDeniedError, match="details scan, signature of a model"):
        forged = {"scan": {"status": "passed"}, "signature": {}}
        dev.models.update_version("churn", 1, details=forged)
    assert dev.models.update_version("churn", 1, details={"note": "ok"}).details["note"] == "ok"
    # Nor append events that store calls write.
    with pytest.raises(PermissionDeniedError, match="may not append them"):
        dev.events.emit("alias.set", "model", "churn", {"alias": "champion", "version": 1})
    dev.events.emit("security.refused", "model", "churn", {"where": "load"})
    assert not project.store.events.list(kind="alias.set")


def test_no_token_is_a_401_with_the_servers_words(served: Served) -> None:
    response = httpx.post(f"{served.url}/api/v1/store/runs/list", content=b"{}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "AuthenticationError"
    store = RemoteStore(served.url, None)
    try:
        with pytest.raises(AuthenticationError, match="unknown or missing token") as refused:
            store.runs.list()
    finally:
        store.close()
    assert refused.value.hint == "see 'opsloop login'"


def test_a_method_off_the_list_is_refused_and_not_run(project: Project, served: Served) -> None:
    run = project.store.runs.create("keep")
    response = _post(served, "runs/delete", f'{{"run_id": "{run.id}"}}'.encode())
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundError"
    assert "not served remotely" in response.json()["detail"]
    assert project.store.runs.get(run.id).name == "keep"


def test_metric_points_are_written_in_one_call_per_batch(
    project: Project, served: Served, as_token: dict[str, RemoteStore]
) -> None:
    store = as_token["dev-token"]
    run = store.runs.create("batched")
    buffer = MetricBuffer(store, run.id, capacity=1000, heartbeat=True)
    for i in range(2500):
        buffer.add("loss", float(i), i, 1_700_000_000_000)
    buffer.close()
    assert project.store.runs.count_metric_points(run.id) == 2500
    assert served.count("POST /api/v1/store/runs/log_metric_points") == 3


def test_blobs_round_trip_and_are_checked(project: Project, served: Served, tmp_path: Path) -> None:
    blobs = RemoteArtifactStore(served.url, "dev-token")
    try:
        digest = blobs.put_bytes(b"hello")
        assert project.artifacts.get_bytes(digest) == b"hello"
        assert blobs.exists(digest) and blobs.size(digest) == 5
        assert blobs.get_bytes(digest) == b"hello"
        folder = tmp_path / "model"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
        tree = blobs.put_dir(folder)
        copy = blobs.get_dir(tree, tmp_path / "copy")
        assert (copy / "sub" / "b.bin").read_bytes() == (folder / "sub" / "b.bin").read_bytes()
        assert project.artifacts.get_manifest(tree).size == 1 + 256 * 5000
        missing = "sha256:" + "0" * 64
        assert not blobs.exists(missing)
        with pytest.raises(NotFoundError):
            blobs.get_bytes(missing)
        with pytest.raises(NotFoundError):
            blobs.size(missing)
    finally:
        blobs.close()


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused(
    project: Project, served: Served
) -> None:
    claimed = "sha256:" + hashlib.sha256(b"what was promised").hexdigest()
    response = httpx.put(
        f"{served.url}/api/v1/blobs/{claimed}",
        content=b"something else",
        headers={"authorization": "Bearer dev-token"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "DigestMismatchError"
    assert not project.artifacts.exists(claimed)
    # The client checks what it reads too: a blob damaged on the server is not returned.
    good = "sha256:" + hashlib.sha256(b"original").hexdigest()
    project.artifacts.put_bytes(b"original")
    path = project.artifacts.local_path(good)  # type: ignore[attr-defined]
    path.write_bytes(b"tampered")
    blobs = RemoteArtifactStore(served.url, "dev-token")
    try:
        with pytest.raises(DigestMismatchError):
            blobs.get_bytes(good)
    finally:
        blobs.close()


def test_a_viewer_may_not_upload_blobs(project: Project, served: Served) -> None:
    blobs = RemoteArtifactStore(served.url, "viewer-token")
    try:
        with pytest.raises(PermissionDeniedError):
            blobs.put_bytes(b"x")
    finally:
        blobs.close()
    assert not project.artifacts.exists("sha256:" + hashlib.sha256(b"x").hexdigest())


def test_server_settings_make_the_project_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok-from-file-91ac\n")
    monkeypatch.setenv("OPSLOOP_SERVER", "http://127.0.0.1:8700")
    monkeypatch.setenv("OPSLOOP_TOKEN", f"file:{secret}")
    folder = tmp_path / "laptop"
    folder.mkdir()
    project = open_project(folder)
    try:
        assert project.remote and project.initialised
        assert project.settings.token is not None
        assert project.settings.token.get_secret_value() == "tok-from-file-91ac"
        assert "tok-from-file" not in repr(project) and "tok-from-file" not in repr(
            project.settings
        )
        assert isinstance(project.store, RemoteStore)
        assert isinstance(project.artifacts, RemoteArtifactStore)
        assert not (folder / ".opsloop").exists()
    finally:
        project.close()


def test_points_the_server_cannot_store_are_dropped_not_retried_forever(
    project: Project, as_token: dict[str, RemoteStore]
) -> None:
    store = as_token["dev-token"]
    run = store.runs.create("odd")
    buffer = MetricBuffer(store, run.id, capacity=100)
    for i in range(10):
        buffer.add("loss", float(i), i, 1_700_000_000_000)
    # A step no database holds: the server says retrying is useless, so the buffer sets the
    # point aside and writes the rest, as it does with a local store.
    buffer.add("loss", 1.0, 2**70, 1_700_000_000_000)
    buffer.close()
    assert buffer.rejected == 1 and len(buffer) == 0
    assert project.store.runs.count_metric_points(run.id) == 10


def test_the_server_scans_and_signs_what_a_client_registers_whatever_it_claims(
    project: Project, as_token: dict[str, RemoteStore], evil_files: Path, model_files: Path
) -> None:
    dev = as_token["dev-token"]
    digest, signed = _upload(project, evil_files)
    # Claimed clean: the server's own scan says otherwise, and no alias is admitted.
    claimed = {**signed, "scan": {"status": "passed", "findings": {}}}
    version = dev.models.create_version("churn", artifact_digest=digest, details=claimed)
    assert version.details["scan"]["status"] == "failed"
    with pytest.raises(SecurityError, match="scan failed"):
        dev.models.set_alias("churn", "staging", version.version)
    # A claimed signature (here one that covers other files) is replaced by the server's own,
    # over the files it received, with the key it publishes for clients to verify with.
    _, foreign = _upload(project, evil_files)
    clean_digest, _ = _upload(project, model_files, signed=False)
    clean = dev.models.create_version("churn", artifact_digest=clean_digest, details=foreign)
    assert clean.details["signature"]["bundle_digest"] != foreign["signature"]["bundle_digest"]
    keys = httpx.get(
        f"{dev.server}/api/v1/keys", headers={"authorization": "Bearer viewer-token"}
    ).json()["keys"]
    assert clean.details["signature"]["key_id"] in {k["key_id"] for k in keys}
    dev.models.set_alias("churn", "staging", clean.version)
    assert project.store.models.aliases() == {("churn", "staging"): 2}
