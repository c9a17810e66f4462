"""The main job as a user runs it: quickstart, then a second run that comes from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def opsloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_quickstart_then_cached_rerun(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = opsloop("quickstart", "--dir", str(folder), cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "created project" in out
    assert "registered models:/churn/1 as champion (every gate passed)" in out
    for word in ("data checks", "candidates", "gates", "evaluation report:"):
        assert word in out
    assert (folder / "opsloop.yaml").is_file()
    assert list((folder / ".opsloop" / "reports").glob("*/report.html"))

    second = opsloop("run", cwd=folder)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "registered models:/churn/1 as champion" in second.stdout
    phases = [line for line in second.stdout.splitlines() if line.startswith("│ ")]
    cached = [line for line in phases if "cached" in line]
    assert len(cached) >= 9, second.stdout

    shown = opsloop("models", "show", "churn", cwd=folder)
    assert shown.returncode == 0 and "champion" in shown.stdout and "passed" in shown.stdout
