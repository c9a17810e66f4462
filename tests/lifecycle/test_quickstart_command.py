"""The commands the main job suggests work as printed, also when the venv is not active."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from opsloop.lifecycle.quickstart import activate_hint, cli_command


@pytest.fixture
def venv_opsloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<clone>/.venv/bin/opsloop`` running, the working directory the clone, the venv not
    on PATH (just installed, not activated)."""
    clone = tmp_path / "clone"
    exe = clone / ".venv" / "bin" / "opsloop"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(clone)
    monkeypatch.setattr(sys, "argv", [".venv/bin/opsloop", "quickstart"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return exe


def test_not_on_path_the_printed_command_is_the_path_of_the_running_one(
    venv_opsloop: Path,
) -> None:
    clone = venv_opsloop.parents[2]
    assert cli_command() == ".venv/bin/opsloop"
    # After 'cd churn-demo' (the project the quickstart made inside the clone).
    assert cli_command(clone / "churn-demo") == "../.venv/bin/opsloop"
    # Far away, the absolute path reads better than a climb.
    assert cli_command(clone.parent / "a" / "b" / "c") == str(venv_opsloop)


def test_on_path_it_is_plain_opsloop(venv_opsloop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{venv_opsloop.parent}{os.pathsep}/usr/bin")
    assert cli_command() == "opsloop"
    assert cli_command(venv_opsloop.parents[2] / "churn-demo") == "opsloop"


def test_another_opsloop_on_path_is_not_taken_for_this_one(
    venv_opsloop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere" / "opsloop"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", str(other.parent))
    assert cli_command() == ".venv/bin/opsloop"


def test_started_as_a_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/opsloop/__main__.py"])
    monkeypatch.chdir(tmp_path)
    assert cli_command().endswith(" -m opsloop")


def test_activate_hint_only_for_an_inactive_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = Path(sys.executable).parent
    if sys.prefix == sys.base_prefix or not (bin_dir / "activate").is_file():
        pytest.skip("the tests do not run in a virtual environment")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    hint = activate_hint()
    assert hint is not None and hint.startswith("source ") and hint.endswith("activate")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin")
    assert activate_hint() is None
