"""Attacks on remote mode's store RPC and blobs: whatever a client sends, the answer is a 4xx
problem (never a 500), nothing off the allow-list runs, and no token appears in an error."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsloop.api.v1 import remote as server_side
from opsloop.artifacts.remote import RemoteArtifactStore, error_from_problem
from opsloop.context import Project
from opsloop.errors import ArtifactError, AuthenticationError, NotFoundError, StoreError
from opsloop.secops.access import Identity
from opsloop.store.remote import RemoteStore
from tests.api.remote_helpers import Served, serve

TOKEN = "tok-7d4c0b9e1f"


def _authenticate(token: str | None) -> Identity:
    if token != TOKEN:
        raise AuthenticationError("unknown or missing token")
    return Identity("mallory", roles=frozenset({"developer"}))


@pytest.fixture
def served(project: Project) -> Iterator[Served]:
    with serve(project, authenticate=_authenticate) as server:
        yield server


def _post(served: Served, path: str, body: bytes | Iterator[bytes]) -> httpx.Response:
    return httpx.post(
        f"{served.url}/api/v1/store/{path}",
        content=body,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"run_id"',
        b"\xff\xfe\x00",
        b'{"run_id": 5}',
        b'{"run_id": "x", "extra": 1}',
        b'{"run_id": {"$gt": ""}}',
        b'{"points": [["k", "NaN-ish", 1, 2]], "run_id": "x"}',
        b'{"points": [["k", 1.0, 1e400, 2]], "run_id": "x"}',
        b'{"points": {"a": 1}, "run_id": "x"}',
    ],
)
def test_bad_json_and_wrong_types_are_422_problems(served: Served, body: bytes) -> None:
    method = "log_metric_points" if b"points" in body else "get"
    problem = _problem(_post(served, f"runs/{method}", body), 422)
    assert problem["data_error"] is True and "refused the arguments" in str(problem["detail"])


def test_a_value_the_database_cannot_hold_is_a_4xx(project: Project, served: Served) -> None:
    run = project.store.runs.create("r")
    # A step beyond 64 bits passes JSON and the type hints, and no database can hold it.
    body = f'{{"run_id": "{run.id}", "points": [["k", 1.0, {2**70}, 1]]}}'.encode()
    response = _post(served, "runs/log_metric_points", body)
    assert 400 <= response.status_code < 500, response.text
    assert project.store.runs.count_metric_points(run.id) == 0


@pytest.mark.parametrize(
    "path",
    [
        "runs/delete",
        "runs/__init__",
        "runs/_run_info",
        "runs/db",
        "runs/heartbeat_timeout_s",
        "__class__/__init__",
        "db/engine",
        "runs/..%2F..%2Fevents%2Femit",
        "runs%2Fget/x",
        "RUNS/get",
        "runs/get%00",
        "runs/" + "a" * 5000,
    ],
)
def test_path_tricks_find_nothing(project: Project, served: Served, path: str) -> None:
    run = project.store.runs.create("keep")
    response = _post(served, path, f'{{"run_id": "{run.id}"}}'.encode())
    assert response.status_code == 404, response.text
    assert project.store.runs.get(run.id).status == "running"


def test_an_oversized_body_is_refused_before_it_is_read(served: Served) -> None:
    # A raw request: an HTTP client will not declare a length it does not send.
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /api/v1/store/runs/log_metric_points HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\n"
                f"Content-Length: {server_side.MAX_BODY_BYTES + 1}\r\n\r\n"
            ).encode()
        )
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413 "), answer[:200]
    assert "application/problem+json" in answer


def test_a_streamed_body_past_the_limit_is_refused(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_side, "MAX_BODY_BYTES", 100_000)

    def chunks() -> Iterator[bytes]:
        yield b'{"run_id": "x", "points": ['
        for _ in range(10_000):
            yield b'["k", 1.0, 1, 1],'

    problem = _problem(_post(served, "runs/log_metric_points", chunks()), 413)
    assert "larger than 100,000 bytes" in str(problem["detail"])


def test_unauthenticated_calls_read_no_body(served: Served) -> None:
    for token in (None, "nope", TOKEN + "x"):
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        for path in ("runs/list", "runs/delete", "no/such"):
            response = httpx.post(
                f"{served.url}/api/v1/store/{path}", content=b"{}", headers=headers
            )
            # Not even which methods exist is told to a caller without a valid token.
            problem = _problem(response, 401)
            assert problem["error"] == "AuthenticationError"
            assert TOKEN not in response.text and "nope" not in response.text


@pytest.mark.parametrize(
    "digest",
    ["sha256:..", "sha256:" + "g" * 64, "md5:" + "a" * 32, "sha256:" + "A" * 64, "..%2F..%2Fx"],
)
def test_blob_digest_tricks_are_refused(served: Served, digest: str) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    for method in ("GET", "PUT"):
        response = httpx.request(
            method, f"{served.url}/api/v1/blobs/{digest}", content=b"x", headers=auth
        )
        assert response.status_code in (400, 404, 422), response.text
    head = httpx.head(f"{served.url}/api/v1/blobs/{digest}", headers=auth)
    assert head.status_code in (400, 404, 422)


def test_an_oversized_blob_is_refused_and_not_stored(
    project: Project, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_side, "MAX_BLOB_BYTES", 1000)
    data = b"x" * 5000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    response = httpx.put(
        f"{served.url}/api/v1/blobs/{digest}",
        content=chunks(),
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    _problem(response, 413)
    assert not project.artifacts.exists(digest)


def test_no_token_in_any_error(served: Served) -> None:
    wrong = "tok-wrong-42aa77"
    store = RemoteStore(served.url, wrong)
    try:
        with pytest.raises(AuthenticationError) as refused:
            store.runs.get("x")
    finally:
        store.close()
    assert wrong not in str(refused.value) and wrong not in repr(store)
    # An unreachable server: the message names the URL, never the credentials.
    down = RemoteStore("http://user:pw-secret-x@127.0.0.1:9/", wrong)
    try:
        with pytest.raises(StoreError) as failed:
            down.runs.get("x")
    finally:
        down.close()
    text = f"{failed.value} {failed.value.hint} {failed.value.__cause__!r}"
    assert wrong not in text and "pw-secret-x" not in str(failed.value)
    assert "pw-secret-x" not in repr(down)


@pytest.mark.parametrize(
    "name", ["SystemExit", "KeyboardInterrupt", "ValueError", "__class__", "is_data_error", 5]
)
def test_a_server_cannot_make_the_client_raise_anything_but_opsloop_errors(name: object) -> None:
    # What a hostile or broken server answers is read as data: only the classes of
    # opsloop.errors are ever raised by name, anything else is a StoreError naming the server.
    exc = error_from_problem("http://u:pw-x@team:8700", 500, {"error": name, "detail": "boom"})
    assert type(exc) is StoreError
    assert str(exc) == "opsloop server http://u:***@team:8700 answered 500: boom"
    named = error_from_problem("http://team", 404, {"error": "NotFoundError", "detail": "gone"})
    assert type(named) is NotFoundError and str(named) == "gone"
    assert type(error_from_problem("http://team", 502, "<html>bad gateway</html>")) is StoreError


def test_an_unreachable_blob_store_is_an_artifact_error_without_the_token(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    blobs = RemoteArtifactStore(f"http://127.0.0.1:{port}", "tok-blob-secret-77")
    (tmp_path / "f").write_bytes(b"data")
    try:
        for attempt in (
            lambda: blobs.put_bytes(b"x"),
            lambda: blobs.put_file(tmp_path / "f"),
            lambda: blobs.get_bytes("sha256:" + "0" * 64),
            lambda: blobs.get_file("sha256:" + "0" * 64, tmp_path / "out"),
        ):
            with pytest.raises(ArtifactError) as failed:
                attempt()
            assert f"127.0.0.1:{port}" in str(failed.value)
            assert "tok-blob-secret" not in f"{failed.value} {failed.value.__cause__!r}"
    finally:
        blobs.close()
    assert not (tmp_path / "out").exists()
