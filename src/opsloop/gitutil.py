"""What Git says about a project folder (commit, dirty flag), without failing outside Git."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from pathlib import Path


class GitInfo(BaseModel):
    """The commit a folder is at and whether it has uncommitted changes."""

    commit: str
    dirty: bool
    branch: str | None = None


def _git(cwd: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(path: Path) -> GitInfo | None:
    """Commit, dirty flag and branch of the repository that tracks the folder ``path``.

    None outside Git, and None for a folder the enclosing repository does not track at its
    commit (a project created inside another checkout, or a virtual environment): that
    commit says nothing about the folder's contents.
    """
    if not path.is_dir():
        return None
    commit = _git(path, "rev-parse", "HEAD")
    if not commit:
        return None
    # Not recursive: one line per entry of the folder itself, so cheap in a large repository.
    if not _git(path, "ls-tree", "--name-only", "HEAD", "--", "."):
        return None
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    branch = _git(path, "rev-parse", "--abbrev-ref", "HEAD")
    return GitInfo(commit=commit, dirty=bool(status), branch=branch)
