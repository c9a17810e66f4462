"""A pipeline run records the Git commit of its project, never that of the code's install."""

from __future__ import annotations

import subprocess
from pathlib import Path

from opsloop.context import Project, use_project
from opsloop.gitutil import git_info
from opsloop.pipeline import run_pipeline

from . import steps_fixture as sf

_IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@localhost"]


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def commit_of_run(project: Project) -> tuple[str | None, str | None]:
    result = run_pipeline(sf.training, {"rows": "60"}, executor="inline", progress=False)
    info = project.store.runs.get(result.run_id)
    return info.git_commit, info.tags.get("opsloop.git_dirty")


def test_a_project_outside_git_records_no_commit(project: Project) -> None:
    # The steps' module sits in opsloop's own repository; the project is in no repository.
    assert git_info(Path(sf.__file__).parent) is not None
    assert commit_of_run(project) == (None, None)


def test_the_projects_own_commit_and_dirty_state(project: Project) -> None:
    git(project.dir, "init", "-q")
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "project")
    head = git(project.dir, "rev-parse", "HEAD")
    assert commit_of_run(project) == (head, None)

    (project.dir / "opsloop.yaml").write_text("project: demo\ndescription: edited\n")
    assert commit_of_run(project) == (head, "true")


def test_a_project_untracked_inside_another_checkout_records_no_commit(tmp_path: Path) -> None:
    outer = tmp_path / "checkout"
    outer.mkdir()
    git(outer, "init", "-q")
    (outer / "README").write_text("someone else's code\n")
    git(outer, "add", "-A")
    git(outer, "commit", "-q", "-m", "outer")
    inner = outer / "churn-demo"
    inner.mkdir()
    (inner / "opsloop.yaml").write_text("project: inner\n")
    with use_project(inner) as proj:
        assert commit_of_run(proj) == (None, None)
        git(outer, "add", "-A")
        git(outer, "commit", "-q", "-m", "track the project")
        assert commit_of_run(proj)[0] == git(outer, "rev-parse", "HEAD")
