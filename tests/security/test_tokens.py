"""API tokens: never stored or logged in plain text, never guessable, refused once expired or
revoked, and never on a command line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import event, inspect, select, text, update

from opsloop.api import create_app
from opsloop.context import Project
from opsloop.errors import AuthenticationError
from opsloop.redact import redact, redact_value
from opsloop.secops.identities import token_authenticator
from opsloop.store import Store, open_store
from opsloop.store import models as m
from opsloop.store.repos.access import TOKEN_PREFIX, hash_token
from tests.api.live import serving


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="admin")
    yield s
    s.close()


def _every_value(store: Store) -> dict[str, list[str]]:
    """Every value of every table, as text, by table."""
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            out[table] = [json.dumps(v, default=str) for row in rows for v in row]
    return out


def test_no_token_in_plain_text_anywhere_in_the_database(store: Store) -> None:
    store.access.create_identity("alice", roles=["developer"])
    issued = [store.access.issue_token("alice", name=f"t{i}") for i in range(3)]
    for t in issued:
        store.access.authenticate(t.token)
    store.access.revoke_token(issued[0].info.id)
    store.access.set_disabled("alice")

    values = _every_value(store)
    everything = "\n".join(v for vs in values.values() for v in vs)
    for t in issued:
        random_part = t.token[len(TOKEN_PREFIX) :]
        assert t.token not in everything
        assert random_part not in everything
        digest = hash_token(t.token)
        # The hash is in the tokens table, and nowhere else (not in an event).
        assert [table for table, vs in values.items() if any(digest in v for v in vs)] == [
            "api_tokens"
        ]
    events = "\n".join(values["events"])
    assert "token.issued" in events and "token.revoked" in events
    for t in issued:
        assert t.info.prefix not in events

    if store.db.dialect == "sqlite":
        # Nor in the database's file or its write-ahead log, whatever the tables say.
        db = Path(store.engine.url.database or "")
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        for t in issued:
            assert t.token[len(TOKEN_PREFIX) :].encode() not in raw


def test_the_database_is_only_ever_sent_the_hash(store: Store) -> None:
    """The token never reaches the database: every statement is bound the SHA-256."""
    store.access.create_identity("bob")
    sent: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        sent.append(f"{statement} {params!r}")

    issued = store.access.issue_token("bob")
    store.access.authenticate(issued.token)
    with pytest.raises(AuthenticationError):
        store.access.authenticate(issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"))
    event.remove(store.engine, "before_cursor_execute", record)
    assert sent
    assert not any(issued.token[len(TOKEN_PREFIX) :] in s for s in sent)
    assert any(hash_token(issued.token) in s for s in sent)


def test_tokens_cannot_be_guessed(store: Store) -> None:
    store.access.create_identity("carol")
    tokens = [store.access.issue_token("carol").token for _ in range(50)]
    # 32 random bytes each: 43 URL-safe characters after the prefix, never repeated.
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == len(TOKEN_PREFIX) + 43 for t in tokens)
    assert len({c for t in tokens for c in t[len(TOKEN_PREFIX) :]}) > 50
    token = tokens[0]
    info = store.access.list_tokens("carol")[0]
    near_misses = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        TOKEN_PREFIX + token[len(TOKEN_PREFIX) :].swapcase(),
        info.prefix,  # the part a list shows
        info.prefix + "A" * (len(token) - len(info.prefix)),
        hash_token(token),  # the stored hash is not a credential
        TOKEN_PREFIX + hash_token(token)[:43],
        token + "A",
        " " + token,
    ]
    for guess in near_misses:
        with pytest.raises(AuthenticationError):
            store.access.authenticate(guess)
    assert store.access.authenticate(token).name == "carol"


def test_expired_and_revoked_tokens_are_refused_by_the_server(project: Project) -> None:
    access = project.store.access
    access.create_identity("dan", roles=["admin"])
    expiring = access.issue_token("dan", expires_at=datetime.now(UTC) + timedelta(hours=1))
    revoked = access.issue_token("dan")
    app = create_app(project, authenticate=token_authenticator(project.store))
    with serving(app) as url:

        def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(f"{url}/api/v1/whoami", headers=headers).status_code

        assert status(expiring.token) == 200 and status(revoked.token) == 200
        with project.store.db.write() as s:
            s.execute(
                update(m.ApiToken)
                .where(m.ApiToken.id == expiring.info.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        access.revoke_token(revoked.info.id)
        assert status(expiring.token) == 401
        assert status(revoked.token) == 401
        # The answer does not say which of the two it was.
        bodies = {
            httpx.get(f"{url}/api/v1/whoami", headers={"Authorization": f"Bearer {t}"}).text
            for t in (expiring.token, revoked.token, TOKEN_PREFIX + "Z" * 43)
        }
        assert len(bodies) == 1


def _env(config: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    env.pop("OPSLOOP_SERVER", None)
    return env


def test_login_takes_no_token_argument(tmp_path: Path) -> None:
    token = TOKEN_PREFIX + "Q" * 43
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "login", "http://127.0.0.1:9", token],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "config"),
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and "unexpected extra argument" in out.stderr.lower()
    assert not (tmp_path / "config").exists()
    help_text = subprocess.run(
        [sys.executable, "-m", "opsloop", "login", "--help"],
        capture_output=True,
        text=True,
        env={**_env(tmp_path / "config"), "COLUMNS": "200"},
        timeout=120,
        check=False,
    ).stdout
    options = {w.strip(",") for w in help_text.split() if w.startswith("--")}
    assert options == {"--token-file", "--help"}, options


def test_the_token_is_never_in_the_process_list(project: Project, tmp_path: Path) -> None:
    project.store.access.create_identity("erin", roles=["viewer"])
    token = project.store.access.issue_token("erin").token
    config = tmp_path / "config"
    app = create_app(project, authenticate=token_authenticator(project.store))
    with serving(app) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opsloop", "login", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(config),
        )
        try:
            seen = psutil.Process(proc.pid)
            # While it waits for the token, and as it is given it: never an argument.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    assert token not in " ".join(seen.cmdline())
                time.sleep(0.05)
            out, err = proc.communicate(token + "\n", timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert "as erin" in out and token not in out + err
    saved = json.loads((config / "opsloop" / "credentials.json").read_text())
    assert saved["servers"][url]["token"] == token
    assert (config / "opsloop" / "credentials.json").stat().st_mode & 0o077 == 0


def test_tokens_stay_out_of_reprs(store: Store) -> None:
    store.access.create_identity("fay")
    issued = store.access.issue_token("fay")
    assert issued.token not in repr(issued) and issued.token not in str(issued)
    with store.db.read() as s:
        row = s.scalar(select(m.ApiToken))
        assert row is not None and issued.token not in repr(row.__dict__)


def test_an_api_token_is_masked_in_every_redacted_text() -> None:
    token = "opsloop_" + "A1b2-C3d4_" * 4 + "xyz"
    assert len(token) == len("opsloop_") + 43
    assert redact(f"login failed for {token}.") == "login failed for ***."
    assert redact_value({"error": f"Bearer {token}"}) == {"error": "Bearer ***"}
    # A metric name or a longer identifier that starts with the prefix is left alone.
    assert redact("opsloop_request_errors_total") == "opsloop_request_errors_total"
    longer = token + "Q"
    assert redact(longer) == longer
