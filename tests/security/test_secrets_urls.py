"""Secrets in store and artifact URLs never print: not in errors, tracebacks, log lines or
reprs, also when the URL is malformed (an unescaped ``@``, a bad port, no scheme)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsloop.context import open_project
from opsloop.errors import ConfigError, StoreError
from opsloop.redact import MASK, redact, redact_url, remember, url_secrets
from opsloop.settings import Settings
from opsloop.spec import parse_spec
from opsloop.store import open_store


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: secrets\n")
    return folder


def opsloop(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_hidden(out: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No piece of any secret in the output."""
    text = out.stdout + out.stderr
    for secret in secrets:
        for piece in [secret, *(p for p in secret.split("@") if len(p) >= 4)]:
            assert piece not in text, f"{piece!r} leaked: {text}"


# Distinctive pieces on both sides of every '@', so a partial leak is caught too.
PW = "Sx9cretQz"


def store_urls(port: int, tmp: Path) -> list[tuple[str, str]]:
    return [
        (f"mysql://alice:{PW}1@127.0.0.1:{port}/db", f"{PW}1"),
        (f"postgresql://alice:{PW}@Kq2w@127.0.0.1:{port}/db", f"{PW}@Kq2w"),
        (f"postgresql://alice:{PW}3@127.0.0.1:notaport/db", f"{PW}3"),
        (f"postgresql://alice:{PW}4@127.0.0.1:{port}/db", f"{PW}4"),
        (f"postgresql://alice@127.0.0.1:{port}/db?password={PW}5", f"{PW}5"),
        (f"postgresql+psycopg://alice:{PW}%40Kq6w@127.0.0.1:{port}/db", f"{PW}@Kq6w"),
        (f"postgresql://alice:{PW}7@127.0.0.1:99999/db", f"{PW}7"),
        (f"sqlite://alice:{PW}8@/{tmp}/missing/x.db", f"{PW}8"),
        (f"s3://AKIAKEY:{PW}10@bucket/prefix", f"{PW}10"),
        (f"alice:{PW}11@127.0.0.1/db", f"{PW}11"),
    ]


def test_no_store_url_shape_prints_its_password(
    workdir: Path, closed_port: int, tmp_path: Path
) -> None:
    for url, secret in store_urls(closed_port, tmp_path):
        out = opsloop(workdir, "runs", "list", env={"OPSLOOP_STORE_URL": url})
        assert_hidden(out, secret)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        lines = out.stderr.splitlines()
        assert lines[0].startswith("error: ") and all(
            ln.startswith("hint: ") for ln in lines[1:]
        ), out.stderr
    # SQLite ignores a password in the query (with a warning that quotes only its name).
    url = f"sqlite:///{tmp_path}/x.db?password={PW}9"
    out = opsloop(workdir, "runs", "list", env={"OPSLOOP_STORE_URL": url})
    assert_hidden(out, f"{PW}9")


def test_bad_urls_are_config_errors_naming_the_setting(workdir: Path, closed_port: int) -> None:
    cases = {
        f"postgresql://alice:{PW}@x@127.0.0.1:{closed_port}/db": "unescaped '@'",
        f"postgresql://alice:{PW}@127.0.0.1:notaport/db": "port is not a number",
        f"postgresql://alice:{PW}@127.0.0.1:99999/db": "out of range",
        f"alice:{PW}@127.0.0.1/db": "is not a URL",
        f"mysql://alice:{PW}@127.0.0.1/db": "unsupported store URL",
    }
    for url, words in cases.items():
        out = opsloop(workdir, "runs", "list", env={"OPSLOOP_STORE_URL": url})
        assert_hidden(out, PW)
        assert out.returncode == 1
        assert out.stderr.startswith("error: OPSLOOP_STORE_URL: "), out.stderr
        assert words in out.stderr and MASK in out.stderr, out.stderr
    (workdir / "opsloop.yaml").write_text(
        f"project: secrets\nstore: {{url: 'postgresql://alice:{PW}@x@127.0.0.1/db'}}\n"
    )
    out = opsloop(workdir, "runs", "list")
    assert_hidden(out, PW)
    assert f"error: store.url in {workdir / 'opsloop.yaml'}: " in out.stderr, out.stderr


def test_the_debug_traceback_hides_the_password_too(workdir: Path, closed_port: int) -> None:
    url = f"postgresql://alice:{PW}@127.0.0.1:{closed_port}/db"
    out = opsloop(workdir, "--debug", "runs", "list", env={"OPSLOOP_STORE_URL": url})
    assert_hidden(out, PW)
    # The whole chain is shown (SQLAlchemy's and the driver's exceptions), masked.
    assert "Traceback" in out.stderr and "OperationalError" in out.stderr, out.stderr


def test_artifact_urls_hide_their_secrets(workdir: Path) -> None:
    for url, words in {
        f"s3://AKIAKEY:{PW}@x@bucket/prefix": "unescaped '@'",
        f"ftp://user:{PW}@host/path": "unsupported artifact store URL",
    }.items():
        out = opsloop(workdir, "monitor", "report", "nothing", env={"OPSLOOP_ARTIFACT_URL": url})
        assert_hidden(out, PW)
        assert out.stderr.startswith("error: OPSLOOP_ARTIFACT_URL: "), out.stderr
        assert words in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:pw@host/db", "postgresql://alice:***@host/db"),
        ("postgresql://alice:p@ss@host/db", "postgresql://alice:***@host/db"),
        ("postgresql://u:pw@host:notaport/db", "postgresql://u:***@host:notaport/db"),
        ("alice:pw@host/db", "alice:***@host/db"),
        ("s3://KEY:SECRET@bucket/p", "s3://KEY:***@bucket/p"),
        (
            "s3://bucket/p?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&x=1",
            "s3://bucket/p?X-Amz-Credential=***&X-Amz-Signature=***&x=1",
        ),
        ("postgresql://h/db?user=a&password=pw", "postgresql://h/db?user=a&password=***"),
        ("postgresql://alice@host/db", "postgresql://alice@host/db"),
        ("sqlite:////home/a@b/x.db", "sqlite:////home/a@b/x.db"),
        ("file:///data/artifacts", "file:///data/artifacts"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_masks_known_secrets_in_any_text() -> None:
    url = "postgresql://alice:Kw3%40secret@host/db?sslpassword=Zt8pass"
    assert set(url_secrets(url)) == {"Kw3%40secret", "Kw3@secret", "Zt8pass"}
    driver = 'invalid dsn: password=Kw3@secret sslpassword="Zt8pass" host=host'
    assert "secret" not in redact(driver, url) and "Zt8pass" not in redact(driver, url)
    # A URL in prose is redacted without being told its secrets, punctuation kept.
    assert redact("at s3://K:Qq9zz@b/x: failed") == f"at s3://K:{MASK}@b/x: failed"
    remember("postgresql://bob:Remembered77@h/db")
    assert redact("echo Remembered77 here") == f"echo {MASK} here"


def test_reprs_hide_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://alice:{PW}@127.0.0.1/db?password={PW}"
    monkeypatch.setenv("OPSLOOP_STORE_URL", url)
    monkeypatch.setenv("OPSLOOP_ARTIFACT_URL", f"s3://KEY:{PW}@bucket/p")
    assert PW not in repr(Settings())
    spec = parse_spec(f"project: x\nstore: {{url: '{url}'}}\n")
    assert PW not in repr(spec)
    (tmp_path / "opsloop.yaml").write_text(f"project: x\nstore: {{url: '{url}'}}\n")
    project = open_project(tmp_path)
    assert PW not in repr(project)
    # Not migrated: no connection is made, only the URL is kept.
    store = open_store(url, migrate=False)
    try:
        assert PW not in store.safe_url and PW not in repr(store)
    finally:
        store.close()


def test_an_unreachable_store_is_a_one_line_store_error(closed_port: int) -> None:
    url = f"postgresql://alice:{PW}@127.0.0.1:{closed_port}/db"
    with pytest.raises(StoreError) as info:
        open_store(url)
    text = str(info.value)
    assert PW not in text and "\n" not in text and "127.0.0.1" in text


def test_log_lines_of_the_cli_are_redacted(workdir: Path) -> None:
    code = (
        "import logging, sys\n"
        "from opsloop.cli import main as m\n"
        "from opsloop.redact import remember\n"
        f"remember('postgresql://a:{PW}@h/db')\n"
        "sys.argv = ['opsloop', '--version']\n"
        "try:\n"
        "    m.main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"logging.getLogger('opsloop.x').warning('failed at %s', 'postgresql://a:{PW}@h/db')\n"
        f"logging.getLogger('opsloop.x').error('echo {PW}')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert PW not in out.stderr and f"failed at postgresql://a:{MASK}@h/db" in out.stderr


def test_a_bad_url_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port is not a number"):
        open_store(f"sqlite://u:{PW}@host:x/{tmp_path}/new/x.db")
    assert not (tmp_path / "new").exists()


@pytest.mark.timeout(20)
def test_redacting_a_megabyte_of_text_is_linear() -> None:
    # Params, tags and events pass through redact: a long run of letters (with or without a
    # '://' at its end) must not make the URL pattern backtrack from every position.
    letters = "x" * 1_000_000
    assert redact(letters) == letters
    assert redact(letters + "://") == letters + "://"
    assert redact(f"{letters} postgresql://u:pw@h/db") == f"{letters} postgresql://u:***@h/db"
