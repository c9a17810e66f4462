"""Opening a store makes no folder by accident: only the project's own ``.opsloop``."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.artifacts import open_artifact_store
from opsloop.context import open_project
from opsloop.errors import ConfigError
from opsloop.store import open_store


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_a_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(ConfigError, match=f"folder {missing} does not exist"):
        open_store(f"sqlite:///{missing / 'x.db'}")
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        open_store(f"sqlite:///{tmp_path / 'file' / 'x.db'}")


def test_a_sqlite_file_in_an_existing_folder_is_created(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.close()
    assert (tmp_path / "x.db").is_file()


def test_the_project_state_folder_is_the_one_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = open_project(tmp_path)
    try:
        project.store.runs.list()
        project.artifacts.put_bytes(b"x")
    finally:
        project.close()
    assert (tmp_path / ".opsloop" / "opsloop.db").is_file()
    assert (tmp_path / ".opsloop" / "artifacts").is_dir()

    elsewhere = tmp_path / "missing" / "dir"
    monkeypatch.setenv("OPSLOOP_STORE_URL", f"sqlite:///{elsewhere / 'x.db'}")
    project = open_project(tmp_path)
    with pytest.raises(ConfigError, match=f"^OPSLOOP_STORE_URL: folder {elsewhere} does not"):
        project.store  # noqa: B018
    monkeypatch.delenv("OPSLOOP_STORE_URL")
    monkeypatch.setenv("OPSLOOP_ARTIFACT_URL", (elsewhere / "artifacts").as_uri())
    project = open_project(tmp_path)
    with pytest.raises(ConfigError, match=f"^OPSLOOP_ARTIFACT_URL: folder {elsewhere} does"):
        project.artifacts  # noqa: B018
    assert not (tmp_path / "missing").exists()


def test_a_file_artifact_store_outside_the_project(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    for url in (missing.as_uri(), str(missing)):
        with pytest.raises(ConfigError, match=f"folder {missing.parent} does not exist"):
            open_artifact_store(url)
    assert not (tmp_path / "nonexistent").exists()
    # The store's own folder is made when its parent exists, as a SQLite file is.
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    store.put_bytes(b"x")
    assert (tmp_path / "artifacts").is_dir()
