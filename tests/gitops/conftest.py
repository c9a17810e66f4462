"""Fixtures of the GitOps tests: a project in a real Git repository, registered models, and
local runtimes whose servers are always stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.registry import register_model

TINY_SERVER = Path(__file__).with_name("tiny_server.py")
IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def git(cwd: Path, *args: str) -> str:
    """Run git as a user would (with a test identity)."""
    out = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def doc(name: str, port: int, *, model: str = "churn", version: int = 1, extra: str = "") -> str:
    """A deployment document."""
    return (
        "apiVersion: opsloop/v1\n"
        "kind: Deployment\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f"  model: {model}\n"
        f"  version: {version}\n"
        f"  port: {port}\n"
        f"{extra}"
    )


@pytest.fixture
def repo_project(project: Project) -> Project:
    """The test project, as a Git repository with one commit."""
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")
    return project


@pytest.fixture
def commit_doc(repo_project: Project) -> Callable[..., str]:
    """Write ``deploy/<file>`` (or delete it with text=None) and commit; return the commit."""

    def write(file: str, text: str | None, message: str = "edit") -> str:
        path = repo_project.dir / "deploy" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
        git(repo_project.dir, "add", "-A", "deploy")
        git(repo_project.dir, "commit", "-q", "-m", message)
        return git(repo_project.dir, "rev-parse", "HEAD")

    return write


@pytest.fixture
def models(repo_project: Project) -> list[int]:
    """Model 'churn' versions 1-3 (champion → 2) and model 'fraud' version 1."""
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (x["a"] + x["b"] > 0).astype(int)
    versions = []
    for i in range(3):
        clf = LogisticRegression(C=0.5 + i).fit(x, y)
        info = register_model("churn", clf, input_example=x.head(3))
        versions.append(info.version)
    repo_project.store.models.set_alias("churn", "champion", 2)
    register_model("fraud", LogisticRegression().fit(x, y), input_example=x.head(3))
    return versions


@pytest.fixture
def tiny_runtime(repo_project: Project) -> Iterator[LocalRuntime]:
    """A local runtime that runs the tiny stand-in server; every server is stopped after."""
    runtime = LocalRuntime(
        repo_project.dir,
        server_command=[sys.executable, str(TINY_SERVER)],
        ready_timeout_s=20,
        stop_timeout_s=5,
    )
    try:
        yield runtime
    finally:
        runtime.stop_all()


def kill(pid: int) -> None:
    """SIGKILL a server, as a crash would, and wait until it is gone (or a zombie)."""

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} survived SIGKILL")
