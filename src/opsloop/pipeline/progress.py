"""The live progress display of a pipeline run: one line per step with its status."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["RunDisplay"]

_STYLE = {
    "pending": "[dim]pending[/]",
    "running": "[cyan]running[/]",
    "retrying": "[yellow]retrying[/]",
    "succeeded": "[green]succeeded[/]",
    "cached": "[blue]cached[/]",
    "failed": "[bold red]failed[/]",
    "skipped": "[dim]skipped[/]",
}
_DONE = ("succeeded", "cached", "failed", "skipped")


class RunDisplay:
    """Shows the steps of a run; does nothing when disabled.

    Refreshes are driven by the runner (no refresh thread), so that worker processes are
    never forked while a display thread holds the terminal.

    Args:
        pipeline: Pipeline name (the title line).
        steps: Step names in display order.
        enabled: Whether to draw anything.
        console: Where to draw (default: stderr).
    """

    def __init__(
        self,
        pipeline: str,
        steps: list[str],
        *,
        enabled: bool = True,
        console: Console | None = None,
    ) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        if not enabled:
            return
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console or Console(file=sys.stderr),
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        width = max((len(s) for s in steps), default=0)
        self._progress.console.print(f"[bold]pipeline {pipeline}[/]")
        for name in steps:
            self._tasks[name] = self._progress.add_task(
                name.ljust(width), total=1, status=_STYLE["pending"], start=False
            )

    def __enter__(self) -> RunDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()

    def update(self, step: str, status: str, note: str = "") -> None:
        """Show ``status`` (and a short note) for ``step``."""
        if self._progress is None:
            return
        task = self._tasks[step]
        text = _STYLE.get(status, status) + (f" [dim]{note}[/]" if note else "")
        if status == "running" or status in _DONE:
            # A task only counts as finished once started (a cached step never runs).
            self._progress.start_task(task)
        if status in _DONE:
            self._progress.update(task, completed=1, status=text)
            self._progress.stop_task(task)
        else:
            self._progress.update(task, status=text)
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        """Redraw (at most ten times a second unless forced)."""
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.1:
            self._last = now
            self._progress.refresh()
