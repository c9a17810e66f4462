"""What every CLI command shares: the console, the project, error and time formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from opsloop.context import Project, open_project, set_current_project

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class State:
    """Options given before the command (``opsloop --debug -C DIR …``)."""

    debug: bool = False
    project_dir: Path | None = None


def project() -> Project:
    """Open the project the command works on and make it the current one."""
    proj = open_project(State.project_dir)
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
