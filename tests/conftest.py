"""Fixtures shared by every test: projects on tmp_path and real store backends.

PostgreSQL tests use the server at ``OPSLOOP_TEST_PG_URL`` (default: the local server on
127.0.0.1:5432 as user postgres). Each test gets a database of its own, dropped afterwards.
Without a reachable server those tests skip with the reason — unless
``OPSLOOP_REQUIRE_POSTGRES=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from opsloop.context import Project, open_project, set_current_project
from opsloop.secops.iac import CHECKOV_ENV, CHECKOV_VERSION, install_checkov

# Parallel test workers inherit COLUMNS=80 and LINES=24 from pytest-xdist; consoles made at
# import would then keep 80 columns, where a serial run sees no terminal and full-width lines.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

# Parallel workers each run whole test files. Model servers of new deployments take the
# first free port of OPSLOOP_PORTS; a port found free by one worker could be taken by the
# other before its server binds it, so each worker gets a range of its own (8700, the
# control-plane server's default, stays outside them).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and _WORKER[2:].isdigit():
    _first = 8601 + 100 * (int(_WORKER[2:]) % 4)
    os.environ["OPSLOOP_PORTS"] = f"{_first}-{_first + 98}"


PG_URL = os.environ.get(
    "OPSLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_pg_problem: str | None = None
_pg_checked = False


def _postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    global _pg_problem, _pg_checked
    if not _pg_checked:
        _pg_checked = True
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(text("SELECT 1"))
            eng.dispose()
        except Exception as exc:
            _pg_problem = f"PostgreSQL at {make_url(PG_URL).render_as_string()} unreachable: {exc}"
    return _pg_problem


def require_postgres() -> None:
    """Skip (or, under CI, fail) the calling test when PostgreSQL is unreachable."""
    reason = _postgres_reason()
    if reason is None:
        return
    if os.environ.get("OPSLOOP_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    require_postgres()
    name = f"opsloop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True, scope="session")
def _isolated_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Signing keys (made on first use) go to a session folder, never the user's config
    folder; subprocesses inherit it."""
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "OPSLOOP_SIGNING_KEY")}
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    os.environ.pop("OPSLOOP_SIGNING_KEY", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store backend in turn: a new SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A zero-config project in a temporary folder, made the current project."""
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    proj_dir = tmp_path / "proj"
    proj_dir.mkdir()
    (proj_dir / "opsloop.yaml").write_text("project: demo\n")
    monkeypatch.chdir(proj_dir)
    proj = open_project(proj_dir)
    set_current_project(proj)
    try:
        yield proj
    finally:
        proj.close()
        set_current_project(None)


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable: ``OPSLOOP_CHECKOV`` when set, else a private virtual
    environment under ``.pytest_cache/`` made on first use (checkov's pins clash with
    opsloop's, so it is never installed next to it)."""
    if os.environ.get(CHECKOV_ENV):
        return Path(os.environ[CHECKOV_ENV])
    root = Path(__file__).resolve().parent.parent
    env_dir = root / ".pytest_cache" / f"checkov-{CHECKOV_VERSION}"
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers share the one environment: the first makes it, the others wait.
    with FileLock(f"{env_dir}.lock"):
        return install_checkov(env_dir)


# The two-node Ray cluster of the Ray tests (a session fixture; skips without ray).
from tests.raycluster import ray_cluster  # noqa: E402, F401
