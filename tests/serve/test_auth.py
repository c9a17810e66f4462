"""Bearer tokens: scopes, constant-time checks, where tokens come from, and which routes
they guard; a server never listens beyond loopback without one unless told it may."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pydantic
import pytest

from opsloop.cli.serve import serve_command
from opsloop.errors import ConfigError, ServingError
from opsloop.serve import JsonlSink, ServerConfig, serve
from opsloop.serve.auth import TokenAuth, is_loopback, read_token
from tests.serve.conftest import run_server
from tests.serve.models import churn_model, load

ROW = {"age": 30, "income": 61.5, "city": "paris", "member": True}
SERVE = "serve-token-0123456789"
ADMIN = "admin-token-9876543210"


def test_tokens_grant_their_scopes_only() -> None:
    auth = TokenAuth([(SERVE, ("predict", "feedback")), (ADMIN, ("predict", "feedback", "admin"))])
    assert auth.allows(f"Bearer {SERVE}", "predict")
    assert auth.allows(f"bearer  {SERVE} ".encode(), "feedback")
    assert not auth.allows(f"Bearer {SERVE}", "admin")
    assert auth.allows(f"Bearer {ADMIN}", "admin") and auth.allows(f"Bearer {ADMIN}", "predict")
    for wrong in (None, "", SERVE, f"Basic {SERVE}", f"Bearer {SERVE}x", f"Bearer {SERVE[:-1]}"):
        assert not auth.allows(wrong, "predict")
    assert auth.guarded == {"predict", "feedback", "admin"}


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        assert not is_loopback(host), host


def test_tokens_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text(f"{SERVE}\n")
    assert read_token(file=file, env_var="X", environ={"X": "other"}) == SERVE
    assert read_token(file=None, env_var="X", environ={"X": f" {ADMIN} "}) == ADMIN
    assert read_token(file=None, env_var="X", environ={}) is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty: the token file is empty"):
        read_token(file=tmp_path / "empty", env_var="X", environ={})
    with pytest.raises(ConfigError, match="missing: cannot read the token"):
        read_token(file=tmp_path / "missing", env_var="X", environ={})
    with pytest.raises(ConfigError, match="one word"):
        read_token(file=None, env_var="X", environ={"X": "two words"})


def test_no_listening_beyond_loopback_without_a_token() -> None:
    with pytest.raises(pydantic.ValidationError, match="reachable from other machines"):
        ServerConfig(models=[churn_model()], host="0.0.0.0")
    ServerConfig(models=[churn_model()], host="0.0.0.0", token=SERVE)
    ServerConfig(models=[churn_model()], host="0.0.0.0", insecure=True)
    # A socket bound beyond loopback is checked too, whatever config.host says.
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        with pytest.raises(ServingError, match=r"bound to 0\.0\.0\.0.*has no token"):
            serve(ServerConfig(models=[churn_model()], port=0), sock=sock)


def test_the_server_token_guards_inference_metadata_and_feedback(tmp_path: Path) -> None:
    config = ServerConfig(
        models=[churn_model()],
        port=0,
        token=SERVE,
        admin_token=ADMIN,
        feedback_sink=JsonlSink(tmp_path / "labels.jsonl"),
        loader=load,
    )
    body = {"dataframe_records": [ROW]}
    v2 = {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [1], "data": [30]},
            {"name": "income", "datatype": "FP64", "shape": [1], "data": [61.5]},
            {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]},
            {"name": "member", "datatype": "BOOL", "shape": [1], "data": [True]},
        ]
    }
    serve_auth = {"authorization": f"Bearer {SERVE}"}
    admin_auth = {"authorization": f"Bearer {ADMIN}"}
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        # Probes and scrapers need no token.
        for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/v2", "/metrics"):
            assert client.get(path).status_code == 200, path
        refused = client.post("/invocations", json=body)
        assert refused.status_code == 401
        assert refused.json()["error_code"] == "UNAUTHENTICATED"
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = client.post(
            "/v2/models/churn/infer", json=v2, headers={"authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        assert client.get("/v2/models/churn").status_code == 401
        assert client.post("/v1/feedback", json={"request_id": "a", "label": 1}).status_code == 401
        ok = client.post("/invocations", json=body, headers=serve_auth)
        assert ok.status_code == 200
        assert client.post("/v2/models/churn/infer", json=v2, headers=serve_auth).status_code == 200
        assert client.get("/v2/models/churn", headers=serve_auth).status_code == 200
        label = {"request_id": ok.headers["x-request-id"], "label": 1}
        assert client.post("/v1/feedback", json=label, headers=serve_auth).json() == {"accepted": 1}
        # The server token is no admin token; the admin token grants everything.
        assert client.get("/v1/admin/models", headers=serve_auth).status_code == 401
        assert client.get("/v1/admin/models", headers=admin_auth).status_code == 200
        assert client.post("/invocations", json=body, headers=admin_auth).status_code == 200
        text = client.get("/metrics").text
    assert 'opsloop_request_errors_total{code="401",model="",version=""}' in text


def test_cli_refuses_a_token_argument_and_an_open_public_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLOOP_SERVE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="--admin-token is not accepted"):
        serve_command(["test:churn/1"], admin_token="s3cret")
    with pytest.raises(ConfigError, match=r"--host 0\.0\.0\.0 is reachable from other machines"):
        serve_command(["test:churn/1"], host="0.0.0.0")
    empty = tmp_path / "token"
    empty.write_text("")
    with pytest.raises(ConfigError, match="the server token file is empty"):
        serve_command(["test:churn/1"], token_file=empty)
