"""The Git repository that holds desired state: read documents at a revision, write commits.

Everything goes through the ``git`` command line. It is what every user already has and
trusts; reading a file at a revision, listing a tree, committing, reverting and reading a
file's log are one command each, so a Git library would add a dependency and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from opsloop.errors import GitOpsError

__all__ = ["CommitInfo", "GitRepo", "author_for"]

_FIELD = "\x1f"
_RECORD = "\x1e"
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CommitInfo:
    """One commit: its id, author, time and subject."""

    sha: str
    author: str
    time: datetime
    subject: str

    @property
    def short(self) -> str:
        """The first 10 characters of the commit id."""
        return self.sha[:10]


def author_for(actor: str) -> tuple[str, str]:
    """The author name and e-mail of commits written on behalf of ``actor``."""
    clean = "".join(c if c.isalnum() or c in "._-" else "-" for c in actor) or "unknown"
    return f"opsloop ({actor})", f"{clean}@opsloop.invalid"


class GitRepo:
    """A Git work tree, used through the ``git`` command.

    Args:
        path: Any folder inside the work tree.

    Raises:
        GitOpsError: ``git`` is not installed or ``path`` is not inside a Git work tree.
    """

    def __init__(self, path: Path) -> None:
        if shutil.which("git") is None:
            raise GitOpsError("the 'git' command is not installed", hint="install Git")
        path = Path(path)
        out = self._run(path, "rev-parse", "--show-toplevel", check=False)
        if out.returncode != 0:
            raise GitOpsError(
                f"{path} is not inside a Git repository",
                hint=f"run 'git init' in {path}, then commit the deploy/ folder",
            )
        self.root = Path(out.stdout.strip()).resolve()

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _run(
        cwd: Path,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        binary: bool = False,
    ) -> subprocess.CompletedProcess[Any]:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=cwd,
                capture_output=True,
                text=not binary,
                env=full_env,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitOpsError(f"git {' '.join(args)} failed: {exc}") from exc
        if check and proc.returncode != 0:
            err = (
                proc.stderr
                if isinstance(proc.stderr, str)
                else proc.stderr.decode(errors="replace")
            )
            raise GitOpsError(f"git {' '.join(args)} failed: {err.strip() or 'no message'}")
        return proc

    def git(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        """Run ``git ARGS`` in the work tree and return its standard output."""
        return str(self._run(self.root, *args, check=check, env=env).stdout)

    def relpath(self, path: Path | str) -> str:
        """``path`` relative to the repository root, with ``/`` separators."""
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(self.root)
            except ValueError as exc:
                raise GitOpsError(f"{path} is outside the repository at {self.root}") from exc
        return PurePosixPath(*p.parts).as_posix() if p.parts else "."

    # -- reading ------------------------------------------------------------------------------

    def has_commits(self) -> bool:
        """Whether HEAD points at a commit."""
        return (
            self._run(self.root, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0
        )

    def resolve(self, revision: str = "HEAD") -> str:
        """The full commit id of ``revision`` (a branch, tag, short id, ``HEAD~2`` …).

        Raises:
            GitOpsError: The revision does not name a commit.
        """
        out = self._run(
            self.root, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}", check=False
        )
        if out.returncode != 0:
            if revision == "HEAD":
                raise GitOpsError(
                    f"the repository at {self.root} has no commits yet",
                    hint="commit the deploy/ folder first",
                )
            raise GitOpsError(f"unknown Git revision {revision!r} in {self.root}")
        return str(out.stdout).strip()

    def list_files(self, revision: str, folder: str) -> list[str]:
        """Paths of the files under ``folder`` at ``revision`` (repository-relative)."""
        out = self.git("ls-tree", "-r", "-z", "--name-only", revision, "--", folder)
        return sorted(p for p in out.split("\0") if p)

    def read(self, revision: str, path: str) -> bytes | None:
        """The content of ``path`` at ``revision``; None when it does not exist there."""
        proc = self._run(
            self.root, "cat-file", "blob", f"{revision}:{path}", check=False, binary=True
        )
        if proc.returncode != 0:
            return None
        return bytes(proc.stdout)

    def is_modified(self, path: str) -> bool:
        """Whether ``path`` has uncommitted changes (staged, unstaged or untracked)."""
        out = self.git("status", "--porcelain", "--untracked-files=all", "--", path)
        return bool(out.strip())

    def log(
        self, path: str | None = None, *, max_count: int = 50, revision: str = "HEAD"
    ) -> list[CommitInfo]:
        """Commits reachable from ``revision`` that touched ``path`` (newest first).

        Renames are not followed: a document is identified by its path.
        """
        if not self.has_commits():
            return []
        fmt = _FIELD.join(("%H", "%an", "%at", "%s")) + _RECORD
        args = ["log", f"--max-count={max_count}", f"--format={fmt}", revision]
        if path is not None:
            args += ["--", path]
        commits: list[CommitInfo] = []
        for raw in self.git(*args).split(_RECORD):
            rec = raw.strip("\n")
            if not rec:
                continue
            sha, author, ts, subject = rec.split(_FIELD, 3)
            commits.append(CommitInfo(sha, author, datetime.fromtimestamp(int(ts), UTC), subject))
        return commits

    def changed_paths(self, commit: str) -> list[str]:
        """Paths a commit changed, compared with its first parent (or everything, for a root)."""
        out = self.git("diff-tree", "--root", "--no-commit-id", "-r", "-z", "--name-only", commit)
        return sorted(p for p in out.split("\0") if p)

    def parent(self, commit: str) -> str | None:
        """The first parent of ``commit``; None for a root commit."""
        out = self._run(self.root, "rev-parse", "--verify", "-q", f"{commit}^", check=False)
        return str(out.stdout).strip() if out.returncode == 0 else None

    # -- writing ------------------------------------------------------------------------------

    def _identity(self, actor: str) -> dict[str, str]:
        name, email = author_for(actor)
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }

    def commit_file(
        self, path: str, content: bytes | None, message: str, *, actor: str
    ) -> str | None:
        """Write (or, with ``content=None``, delete) one file and commit only that file.

        Other staged or unstaged changes in the work tree are left as they are and are not
        part of the commit.

        Args:
            path: Repository-relative path.
            content: The new content; None removes the file.
            message: The commit message (subject, blank line, body).
            actor: Who asked for the change (the commit's author).

        Returns:
            The new commit id; None when the file already had that content.

        Raises:
            GitOpsError: The file has uncommitted changes, or git failed.
        """
        if self.is_modified(path):
            raise GitOpsError(
                f"{path} has uncommitted changes; commit or discard them first",
                hint=f"git diff -- {path}",
            )
        target = self.root / path
        if content is None:
            if not target.exists():
                return None
            target.unlink()
        else:
            if target.is_file() and target.read_bytes() == content:
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self.git("add", "-A", "--", path)
        self.git("commit", "--quiet", "-m", message, "--", path, env=self._identity(actor))
        return self.resolve("HEAD")

    def revert(self, commit: str, *, actor: str, paths: list[str] | None = None) -> str:
        """Undo ``commit`` with a new commit.

        When ``commit`` changed only ``paths`` (or ``paths`` is None) this is ``git revert``;
        when it also changed other files, only ``paths`` are put back to their content before
        it, so a rollback of one deployment never touches another.

        Returns:
            The new commit id.

        Raises:
            GitOpsError: The files have uncommitted changes, or git failed.
        """
        subject = self.git("log", "-1", "--format=%s", commit).strip()
        changed = self.changed_paths(commit)
        touched = changed if paths is None else [p for p in changed if p in paths]
        dirty = [p for p in touched if self.is_modified(p)]
        if dirty:
            raise GitOpsError(
                f"{', '.join(dirty)} has uncommitted changes; commit or discard them first"
            )
        if paths is None or set(changed) <= set(paths):
            env = self._identity(actor)
            proc = self._run(self.root, "revert", "--no-edit", commit, check=False, env=env)
            if proc.returncode != 0:
                self._run(self.root, "revert", "--abort", check=False)
                raise GitOpsError(f"git revert {commit[:10]} failed: {str(proc.stderr).strip()}")
            return self.resolve("HEAD")
        parent = self.parent(commit)
        message = f'Revert "{subject}"\n\nThis reverts {", ".join(touched)} of commit {commit}.'
        new: str | None = None
        for path in touched:
            before = self.read(parent, path) if parent else None
            new = self.commit_file(path, before, message, actor=actor) or new
        if new is None:
            raise GitOpsError(f"reverting {commit[:10]} changes nothing in {', '.join(touched)}")
        return new
