"""What every CLI command shares: the console, the project, error and time formatting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from opsloop.context import Project, find_project, set_current_project

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
