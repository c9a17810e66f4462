"""A step's progress lines reach the user's terminal or log: they cannot inject markup,
escape sequences or floods, and a planted file at the feed's path is never followed."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from opsloop.artifacts import open_artifact_store
from opsloop.pipeline import run_pipeline
from opsloop.pipeline.progress import RunDisplay, progress_file
from opsloop.store import open_store
from tests.pipeline import progress_fixture as pf


def test_hostile_progress_text_is_shown_inert_and_bounded(tmp_path: Path, capsys) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    artifacts = open_artifact_store(str(tmp_path / "a"))
    hostile = "[bold red]FAKE[/bold red] \x1b[2J\x1b]0;title\x07 \r\n done" + "x" * 1_000_000
    try:
        result = run_pipeline(
            pf.progress_demo,
            {"n": 2, "text": hostile},
            store=store,
            artifacts=artifacts,
            executor="local",
            progress=True,
        )
    finally:
        store.close()
    assert result.succeeded, result.error
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("  count: ")]
    assert len(lines) == 2
    # Markup is shown as written, not interpreted; each line is cut.
    assert all("[bold red]FAKE[/bold red]" in line for line in lines)
    assert all(len(line) <= len("  count: ") + 400 for line in lines)


def test_a_planted_feed_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("count\tthe secret\n")
    planted = progress_file("planted-run")
    planted.unlink(missing_ok=True)
    os.symlink(secret, planted)
    try:
        out = io.StringIO()
        display = RunDisplay("p", ["count"], console=Console(file=out), run_id="planted-run")
        with display:
            display.update("count", "running")
            display.refresh()
            display.update("count", "succeeded")
        assert "secret" not in out.getvalue()
        # The display never removes what it did not create.
        assert planted.is_symlink()
    finally:
        planted.unlink(missing_ok=True)
