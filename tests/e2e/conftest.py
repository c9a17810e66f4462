"""The quickstart's project, made once per test session and shared by the flows that start
where a new user starts: right after the README's set-up command."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def opsloop_env() -> dict[str, str]:
    """The environment of a user's shell: opsloop on PATH, no opsloop settings, a wide terminal."""
    env = {**os.environ, "COLUMNS": "200"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        env.pop(var, None)
    return env


def opsloop(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the opsloop CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=opsloop_env(),
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Quickstart:
    """Where the quickstart ran, the project it made (``churn-demo``, as in the README's
    set-up command) and what it printed."""

    root: Path
    folder: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Quickstart:
    root = tmp_path_factory.mktemp("newcomer")
    result = opsloop("quickstart", "--dir", "./churn-demo", cwd=root)
    return Quickstart(root=root, folder=root / "churn-demo", result=result)
