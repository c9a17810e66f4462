"""The live progress display of a pipeline run: one line per step with its status.

On a terminal the lines are redrawn in place. Without one (output to a log file or a pipe) a
redrawn display would only appear when the run ends, so each change is written as a plain line
of its own instead: a step starting, a step ending with its time, and the progress lines a
running step reports with :func:`report_progress` (each tuning trial of the lifecycle).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from opsloop.pipeline.worker import current_task

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["RunDisplay", "progress_file", "report_progress"]

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
# A progress line is a short sentence; a step that writes more is cut, not the display.
_MAX_LINE = 400


def progress_file(run_id: str) -> Path:
    """Where the steps of run ``run_id`` append their progress lines for the display.

    A file rather than a pipe: workers are separate processes, and a step must be able to
    report without knowing how the run displays (or whether anything listens).
    """
    return Path(tempfile.gettempdir()) / f"opsloop-progress-{run_id}.log"


def report_progress(text: str) -> None:
    """Show one line of progress of the running step on its run's display.

    Does nothing outside a pipeline step, or when the run shows no display.
    """

    task = current_task()
    if task is None:
        return
    # One printable line: a step's text must not move the cursor or colour a terminal.
    printable = "".join(ch if ch.isprintable() else " " for ch in text[: _MAX_LINE * 4])
    line = " ".join(printable.split())[:_MAX_LINE]
    try:
        # No O_CREAT: only the run that listens creates the file (private, random name).
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(progress_file(task.run_id), flags)
    except OSError:
        return
    try:
        os.write(fd, f"{task.step}\t{line}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


class RunDisplay:
    """Shows the steps of a run; does nothing when disabled.

    Refreshes are driven by the runner (no refresh thread), so that worker processes are
    never forked while a display thread holds the terminal.

    Args:
        pipeline: Pipeline name (the title line).
        steps: Step names in display order.
        enabled: Whether to draw anything.
        console: Where to draw (default: stderr).
        run_id: The run; its steps' :func:`report_progress` lines are shown.
    """

    def __init__(
        self,
        pipeline: str,
        steps: list[str],
        *,
        enabled: bool = True,
        console: Console | None = None,
        run_id: str | None = None,
    ) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        self._console: Console | None = None
        self._started: dict[str, float] = {}
        self._feed: Path | None = None
        self._offset = 0
        self._partial = b""
        if not enabled:
            return
        self._console = console or Console(file=sys.stderr)
        self._console.print(f"[bold]pipeline {pipeline}[/]")
        if run_id is not None:
            self._open_feed(progress_file(run_id))
        if not self._console.is_terminal:
            return
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        width = max((len(s) for s in steps), default=0)
        for name in steps:
            self._tasks[name] = self._progress.add_task(
                name.ljust(width), total=1, status=_STYLE["pending"], start=False
            )

    def _open_feed(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            self._feed = path

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
        self._read_feed()
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
        if self._feed is not None:
            with contextlib.suppress(OSError):
                self._feed.unlink()
            self._feed = None

    def update(self, step: str, status: str, note: str = "") -> None:
        """Show ``status`` (and a short note) for ``step``."""
        # Progress lines the step wrote come before its end.
        self._read_feed()
        if self._progress is None:
            self._plain(step, status, note)
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

    def _plain(self, step: str, status: str, note: str) -> None:
        if self._console is None:
            return
        took = ""
        if status == "running":
            self._started[step] = time.monotonic()
        elif status in ("succeeded", "failed") and step in self._started:
            took = f" in {time.monotonic() - self._started.pop(step):.1f}s"
        said = f" ({note})" if note else ""
        self._console.print(f"{step}: {status}{took}{escape(said)}", soft_wrap=True)

    def refresh(self, *, force: bool = False) -> None:
        """Redraw (at most ten times a second unless forced), with new progress lines."""
        self._read_feed()
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.1:
            self._last = now
            self._progress.refresh()

    def _read_feed(self) -> None:
        if self._feed is None:
            return
        try:
            with self._feed.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            step, _, text = raw.decode("utf-8", "replace").partition("\t")
            if self._progress is not None and step in self._tasks:
                # On a terminal the latest line is the running step's note.
                status = f"{_STYLE['running']} [dim]{escape(text)}[/]"
                self._progress.update(self._tasks[step], status=status)
            elif self._console is not None:
                self._console.print(f"  {step}: {escape(text)}", soft_wrap=True)
