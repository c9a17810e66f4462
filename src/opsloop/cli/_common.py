"""What every CLI command shares: the console, the project, error and time formatting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from opsloop.errors import NotFoundError, OpsloopError

if TYPE_CHECKING:
    from opsloop.context import Project

# Lines in a log file are not wrapped: a path cut at column 80 cannot be copied.
_LOG_WIDTH = 240


def make_console(*, stderr: bool = False) -> Console:
    """A console for the CLI: on a terminal as usual; without one (a log file, a pipe) plain
    full-width lines, nothing wrapped, no colour codes, unless ``COLUMNS`` says otherwise."""
    probe = Console(stderr=stderr, highlight=False)
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(stderr=stderr, highlight=False, width=_LOG_WIDTH, soft_wrap=True, no_color=True)


console = make_console()
err_console = make_console(stderr=True)


class State:
    """Options given before the command (``opsloop --debug -C DIR …``)."""

    debug: bool = False
    project_dir: Path | None = None


def project() -> Project:
    """Open the project the command works on and make it the current one.

    Raises:
        ConfigError: The working directory (or ``-C DIR``) is not in a project; nothing is
            created.
    """
    # Lazy: the project's settings load pydantic and YAML, which 'opsloop --help' never needs.
    from opsloop.context import find_project, set_current_project  # noqa: PLC0415

    proj = find_project(State.project_dir)
    set_current_project(proj)
    return proj


def ago(when: datetime | None) -> str:
    """A short, human reading of a timestamp (``3m ago``)."""
    if when is None:
        return "-"
    secs = (datetime.now(UTC) - when).total_seconds()
    if secs < 60:
        return f"{int(secs)}s ago"
    if secs < 3600:
        return f"{int(secs // 60)}m ago"
    if secs < 86400:
        return f"{int(secs // 3600)}h ago"
    return when.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """``1.2s``, ``3m04s`` or ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


STATUS_STYLE = {
    "running": "yellow",
    "finished": "green",
    "succeeded": "green",
    "cached": "cyan",
    "failed": "red",
    "killed": "red",
    "skipped": "dim",
    "pending": "dim",
}


def status(s: str) -> str:
    """A status word in its colour."""
    style = STATUS_STYLE.get(s, "white")
    return f"[{style}]{s}[/{style}]"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 run``, ``3 runs`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def hidden_note(parts: list[str], total_hidden: int) -> str | None:
    """The line under a list that says what it left out, or None when nothing was.

    Every list command shows the usual rows, newest first, at most ``--limit``; ``--all``
    shows every row. ``parts`` name what was left out (``3 resolved incidents``).
    """
    if total_hidden <= 0 or not parts:
        return None
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{said} hidden; --all shows {'it' if total_hidden == 1 else 'them'}"


@dataclass(frozen=True)
class DeploymentRef:
    """A deployment document that serves a model: by alias, or a pinned version."""

    name: str
    file: str
    alias: str | None
    version: int | None


def deployments_of(proj: Project, model: str, folder: str = "deploy") -> list[DeploymentRef]:
    """The deployments whose documents serve ``model``: as Git holds them at HEAD (what a
    sync applies), or as the files are when the project is not a Git repository yet."""
    from opsloop.gitops.document import DeploymentDocument, parse_document  # noqa: PLC0415

    docs: list[tuple[str, DeploymentDocument]] = []
    try:
        from opsloop.gitops.loader import load_desired_state  # noqa: PLC0415
        from opsloop.gitops.repo import GitRepo  # noqa: PLC0415

        repo = GitRepo(proj.dir)
        state = load_desired_state(
            repo,
            repo.relpath(proj.dir / folder),
            revision="HEAD" if repo.has_commits() else None,
        )
        docs = [(d.file, d.document) for d in state.documents.values()]
    except OpsloopError:
        for path in sorted((proj.dir / folder).glob("*.y*ml")):
            try:
                rel = path.relative_to(proj.dir).as_posix()
                docs.append((rel, parse_document(path.read_text("utf-8"), rel)))
            except (OpsloopError, OSError, UnicodeDecodeError):
                continue
    return [
        DeploymentRef(doc.name, file, doc.spec.alias, doc.spec.version)
        for file, doc in sorted(docs, key=lambda item: item[1].name)
        if doc.spec.model == model
    ]


def report_alias_moves(
    proj: Project, model: str, before: dict[str, int], after: dict[str, int]
) -> None:
    """Say loudly which deployments an alias move changes (or leaves behind)."""
    moved = {a for a in set(before) | set(after) if before.get(a) != after.get(a)}
    if not moved:
        return
    for dep in deployments_of(proj, model):
        if dep.alias in moved:
            old, new = before.get(dep.alias), after.get(dep.alias)
            what = f"serves v{new}" if new is not None else "has nothing to serve"
            was = f" instead of v{old}" if old is not None else ""
            console.print(
                f"[bold yellow]warning:[/bold yellow] deployment '{dep.name}' follows "
                f"{model}@{dep.alias} ({dep.file}): after the next sync it {what}{was}",
                soft_wrap=True,
            )
        elif dep.version is not None:
            for alias in sorted(moved & {"champion"}):
                new = after.get(alias)
                if new is None or new == dep.version:
                    continue
                hint = (
                    f"; 'opsloop deploy promote {model} --to {dep.name}' serves it"
                    if new > dep.version
                    else f"; it keeps serving v{dep.version}"
                )
                console.print(
                    f"note: deployment '{dep.name}' pins v{dep.version} ({dep.file}); "
                    f"{model}@{alias} is now v{new}{hint}",
                    soft_wrap=True,
                )


def model_aliases(proj: Project, model: str) -> dict[str, int]:
    """The model's aliases now (none when it is not registered yet)."""

    try:
        return dict(proj.store.models.get(model).aliases)
    except NotFoundError:
        return {}
