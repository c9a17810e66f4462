"""The Python API outside a project: finding the project creates nothing, lookups create
nothing, recording creates the zero-configuration project's ``.opsloop/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import opsloop
from opsloop.context import current_project, find_project, set_current_project
from opsloop.credentials import Credential, save_credential
from opsloop.errors import ConfigError, NotFoundError
from opsloop.spec import find_project_dir


@pytest.fixture
def random_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with no opsloop.yaml here or above."""
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "somewhere"
    folder.mkdir()
    assert find_project_dir(folder) is None
    monkeypatch.chdir(folder)
    set_current_project(None)
    try:
        yield folder
    finally:
        current_project().close()
        set_current_project(None)


def test_lookups_outside_a_project_create_nothing(random_folder: Path) -> None:
    proj = current_project()
    assert proj.dir == random_folder and not proj.initialised
    with pytest.raises(NotFoundError, match="is not an opsloop project"):
        opsloop.load_model("models:/churn@champion")
    with pytest.raises(NotFoundError, match="is not an opsloop project"):
        opsloop.load_output("0123abcd", "train")
    assert list(random_folder.iterdir()) == []


def test_recording_creates_the_zero_config_project_then_lookups_read_it(
    random_folder: Path,
) -> None:
    with opsloop.start_run(name="baseline"):
        opsloop.log_metric("loss", 0.5)
    assert (random_folder / ".opsloop").is_dir()
    assert current_project().initialised
    with pytest.raises(NotFoundError, match="model 'churn' is not registered"):
        opsloop.load_model("models:/churn@champion")


def test_find_project_refuses_a_folder_that_is_no_project(random_folder: Path) -> None:
    with pytest.raises(ConfigError, match=r"no opsloop.yaml here or above .*opsloop init"):
        find_project()
    with pytest.raises(ConfigError, match="does not exist: it is not an opsloop project"):
        find_project(random_folder / "nope")
    assert list(random_folder.iterdir()) == []
    # A folder the library recorded into is a project for the CLI too.
    (random_folder / ".opsloop").mkdir()
    assert find_project().dir == random_folder


def test_remote_mode_uses_the_token_opsloop_login_saved(
    random_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("OPSLOOP_SERVER", "http://127.0.0.1:8700/")
    monkeypatch.delenv("OPSLOOP_TOKEN", raising=False)
    save_credential(
        Credential(server="http://127.0.0.1:8700", identity="ada", token="opsloop_saved"),
        config / "opsloop",
    )
    assert find_project(random_folder)._token == "opsloop_saved"
    # The environment wins over the saved token.
    monkeypatch.setenv("OPSLOOP_TOKEN", "opsloop_from_env")
    assert find_project(random_folder)._token == "opsloop_from_env"
