"""The credentials file ``opsloop login`` writes, and the check it makes against a server."""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.api import create_app
from opsloop.context import Project
from opsloop.errors import AuthenticationError, ConfigError, SecurityError
from opsloop.secops.access import local_identity
from opsloop.secops.credentials import (
    Credential,
    access_status,
    credentials_path,
    load_credentials,
    login,
    logout,
    normalize_server,
    read_token,
    save_credential,
)
from opsloop.secops.identities import token_authenticator
from tests.api.live import serving

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture
def server(project: Project) -> Iterator[str]:
    with serving(create_app(project, authenticate=token_authenticator(project.store))) as url:
        yield url


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTPS://Opsloop.Example.com", "https://opsloop.example.com"),
        ("https://example.com/opsloop/", "https://example.com/opsloop"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_normalize_server(url: str, normal: str) -> None:
    assert normalize_server(url) == normal


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host", "is not http(s)"),
        ("localhost:8080", "is not http(s)"),
        ("http://", "is not http(s)"),
        ("https://alice:secret@host", "no user, password"),
        ("https://host/?token=x", "no user, password, query"),
    ],
)
def test_bad_server_urls(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        normalize_server(url)


@posix_only
def test_save_load_logout(tmp_path: Path) -> None:
    root = tmp_path / "config"
    cred = Credential("http://a:1", "alice", "opsloop_secret", "2026-01-01T00:00:00+00:00")
    assert "opsloop_secret" not in repr(cred)
    path = save_credential(cred, root)
    assert path == credentials_path(root)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    save_credential(Credential("http://b:2", "bot", "opsloop_other"), root)
    assert load_credentials(root) == {
        "http://a:1": cred,
        "http://b:2": Credential("http://b:2", "bot", "opsloop_other"),
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert logout("http://a:1/", root)
    assert not logout("http://a:1", root)
    assert list(load_credentials(root)) == ["http://b:2"]
    # No temporary file is left behind.
    assert sorted(p.name for p in root.iterdir()) == ["credentials.json"]


@posix_only
def test_a_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = save_credential(Credential("http://a:1", "alice", "opsloop_secret"), tmp_path)
    os.chmod(path, 0o644)
    with pytest.raises(SecurityError, match="may be read by other users") as info:
        load_credentials(tmp_path)
    assert info.value.hint == f"chmod 600 {path}"


def test_a_broken_file_is_refused(tmp_path: Path) -> None:
    path = credentials_path(tmp_path)
    path.write_text('{"servers": []}')
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is not readable"):
        load_credentials(tmp_path)
    assert load_credentials(tmp_path / "nothing") == {}


def test_read_token() -> None:
    assert read_token("  opsloop_abc\n") == "opsloop_abc"
    for bad in ("", " \n", "two words", "x" * 5000):
        with pytest.raises(AuthenticationError):
            read_token(bad)


def test_login_checks_then_saves(project: Project, server: str, tmp_path: Path) -> None:
    project.store.access.create_identity("alice", roles=["deployer"])
    token = project.store.access.issue_token("alice").token
    cred, me = login(server + "/", token + "\n", root=tmp_path)
    assert cred.server == server and cred.identity == "alice" and cred.token == token
    assert me["roles"] == ["deployer"]
    assert load_credentials(tmp_path) == {server: cred}


def test_a_refused_token_saves_nothing(project: Project, server: str, tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError, match="refused the token"):
        login(server, "opsloop_" + "A" * 43, root=tmp_path)
    assert not credentials_path(tmp_path).exists()


def test_what_is_not_an_opsloop_server(project: Project, server: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did not answer GET /api/v1/whoami"):
        login(server + "/elsewhere", "opsloop_" + "A" * 43, root=tmp_path)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach"):
        login(f"http://127.0.0.1:{closed}", "opsloop_" + "A" * 43, root=tmp_path)
    assert not credentials_path(tmp_path).exists()


def test_access_status(tmp_path: Path) -> None:
    me = local_identity().name
    assert access_status(tmp_path, env={}) == (f"access: local single-user mode ({me}, all roles)")
    assert access_status(tmp_path, env={"OPSLOOP_SERVER": "http://s:1/"}) == (
        "access: server http://s:1, not logged in (opsloop login http://s:1)"
    )
    save_credential(Credential("http://s:1", "alice", "opsloop_t"), tmp_path)
    assert access_status(tmp_path, env={"OPSLOOP_SERVER": "http://s:1"}) == (
        "access: server http://s:1 as alice"
    )
    assert access_status(tmp_path, env={}) == (
        f"access: local single-user mode ({me}, all roles); logged in to http://s:1 as alice"
    )
    assert "unusable" in access_status(tmp_path, env={"OPSLOOP_SERVER": "nope"})
