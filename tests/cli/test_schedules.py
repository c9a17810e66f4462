"""``opsloop schedules list|history`` on a project whose scheduler has run."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from opsloop.cli.main import main
from opsloop.context import open_project
from opsloop.lifecycle.schedules import Scheduler

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    return out


def test_list_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    spec = {
        "project": "s",
        "schedules": {
            "nightly": {"cron": "0 3 * * *", "missed": "catch-up"},
            "heal": {"incident": "data_drift", "concurrency": "replace"},
        },
    }
    (tmp_path / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    project = open_project(tmp_path)
    scheduler = Scheduler(project, command=lambda s: [sys.executable, "-c", "pass"])
    scheduler.tick(T0)
    scheduler.tick(T0 + timedelta(days=2))
    scheduler.wait(timeout_s=60)
    project.close()

    listed = _run(["-C", str(tmp_path), "schedules", "list"], capsys)
    assert "cron 0 3 * * *" in listed
    assert "incident data_drift" in listed
    assert "catch-up" in listed and "replace" in listed
    assert "succeeded" in listed

    history = _run(["-C", str(tmp_path), "schedules", "history", "nightly"], capsys)
    assert "catch-up" in history
    assert "succeeded" in history
    assert "2026-05-03 03:00:00" in history
    empty = _run(["-C", str(tmp_path), "schedules", "history", "heal"], capsys)
    assert "'heal' has no history" in empty
