"""``opsloop users``, ``tokens``, ``login``, ``logout`` and the access line of ``status``: in
process through the CLI's own entry point, and ``login`` as a real subprocess against a real
server (it reads the token from standard input)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsloop.api import create_app
from opsloop.cli.main import main
from opsloop.context import Project, open_project
from opsloop.secops.access import local_identity
from opsloop.secops.identities import token_authenticator
from tests.api.live import serving


def opsloop(
    *args: str, cwd: Path, config: Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "XDG_CONFIG_HOME": str(config), **env}
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        full_env.pop(var, None)
    if "OPSLOOP_SERVER" not in env:
        full_env.pop("OPSLOOP_SERVER", None)
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def proj_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    (path / "opsloop.yaml").write_text("project: access\n")
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPSLOOP_SERVER", raising=False)
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(proj_dir: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``opsloop ARGS`` in this process, as the console script runs it."""

    def invoke(*args: str) -> Result:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return invoke


@pytest.fixture
def project_at(proj_dir: Path) -> Iterator[Project]:
    proj = open_project(proj_dir)
    try:
        yield proj
    finally:
        proj.close()


def test_users_and_tokens(run: Callable[..., Result]) -> None:
    assert "no users yet" in run("users", "list").stdout
    out = run("users", "add", "alice", "--role", "developer")
    assert out.returncode == 0, out.stderr
    assert "added user alice (developer)" in out.stdout
    out = run("users", "add", "ci", "--service", "-r", "deployer")
    assert "added service ci (deployer)" in out.stdout
    out = run("users", "grant", "alice", "deployer", "--model", "churn")
    assert "alice holds deployer on model 'churn'" in out.stdout, out.stderr
    listed = run("users", "list").stdout
    assert "alice" in listed and "deployer on model churn" in listed and "service" in listed

    made = run("tokens", "create", "alice", "--name", "laptop", "--expires", "30d")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("opsloop_") and len(token.splitlines()) == 1
    assert "not shown again" in made.stderr and token not in made.stderr

    listed = run("tokens", "list").stdout
    assert "laptop" in listed and "active" in listed and token[:14] in listed
    assert token not in listed
    assert "alice" in run("tokens", "list", "alice").stdout
    out = run("tokens", "revoke", "1")
    assert out.returncode == 0 and "revoked token 1 of alice" in out.stdout
    assert "revoked" in run("tokens", "list").stdout

    out = run("users", "revoke", "alice", "deployer", "--model", "churn")
    assert "alice no longer holds deployer on model 'churn'" in out.stdout
    out = run("users", "disable", "ci")
    assert out.returncode == 0 and "disabled ci" in out.stdout
    assert "disabled" in run("users", "list").stdout
    out = run("tokens", "create", "ci")
    assert out.returncode == 1 and "identity 'ci' is disabled" in out.stderr
    assert "opsloop users enable ci" in out.stderr
    assert run("users", "enable", "ci").returncode == 0
    assert run("tokens", "create", "ci", "--expires", "never").returncode == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("users", "add", "bob", "--role", "root"), "unknown role 'root'"),
        (("users", "add", "bad name"), "invalid identity name"),
        (("users", "grant", "nobody", "viewer"), "identity 'nobody' does not exist"),
        (
            ("users", "grant", "x", "viewer", "--model", "m", "--deployment", "d"),
            "one model or one deployment",
        ),
        (("tokens", "create", "nobody"), "identity 'nobody' does not exist"),
        (("tokens", "create", "x", "--expires", "soon"), "invalid token lifetime 'soon'"),
        (("tokens", "revoke", "7"), "token 7 does not exist"),
        (
            ("login", "http://127.0.0.1:9", "--token-file", "missing.txt"),
            "cannot read the token file missing.txt: No such file or directory",
        ),
        (("login", "ftp://x", "--token-file", "opsloop.yaml"), "is not http(s)"),
    ],
)
def test_bad_input_is_one_clear_line(
    run: Callable[..., Result], args: tuple[str, ...], words: str
) -> None:
    out = run(*args)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_login_logout_and_status(
    project_at: Project, proj_dir: Path, config: Path, run: Callable[..., Result]
) -> None:
    project_at.store.access.create_identity("alice", roles=["developer"])
    token = project_at.store.access.issue_token("alice").token
    token_file = proj_dir.parent / "token.txt"
    token_file.write_text(token + "\n")
    app = create_app(project_at, authenticate=token_authenticator(project_at.store))
    with serving(app) as url:
        # As a user runs it: the token on standard input of a new process.
        out = opsloop("login", url, cwd=proj_dir, config=config, stdin=token + "\n")
        assert out.returncode == 0, out.stderr
        assert f"logged in to {url} as alice (developer)" in out.stdout
        assert token not in out.stdout + out.stderr
        creds = config / "opsloop" / "credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600

        out = run("login", url + "/", "--token-file", str(token_file))
        assert out.returncode == 0 and "as alice" in out.stdout, out.stderr

        bad_file = proj_dir.parent / "bad.txt"
        bad_file.write_text("opsloop_" + "B" * 43)
        refused = run("login", url, "--token-file", str(bad_file))
        assert refused.returncode == 1 and "refused the token" in refused.stderr

    subprocess.run(["git", "init", "-q"], cwd=proj_dir, check=True)
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(
        ["git", *who, "commit", "-q", "--allow-empty", "-m", "init"], cwd=proj_dir, check=True
    )
    me = local_identity().name
    status = run("status")
    assert status.returncode == 0, status.stderr
    assert f"access: local single-user mode ({me}, all roles); logged in to {url} as alice" in (
        status.stdout
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPSLOOP_SERVER", url)
        assert f"access: server {url} as alice" in run("status").stdout

    out = run("logout", url)
    assert out.returncode == 0 and f"logged out of {url}" in out.stdout
    assert "no token saved" in run("logout", url).stdout
    status = run("status")
    assert status.stdout.startswith(f"access: local single-user mode ({me}, all roles)\n")
