"""``opsloop monitor run|report|prune``: scheduled monitors, once, their HTML report, and the
prediction log's retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import console, project
from opsloop.errors import MonitorError

app = typer.Typer(
    help="Drift, model quality and service health from the prediction log.",
    no_args_is_help=True,
)

WINDOW_HELP = "Window length: 30s, 15m, 1h, 1d …"


def parse_window(text: str) -> timedelta:
    """A window length from text such as ``15m``, ``1h``, ``90s`` or ``1d``.

    Raises:
        MonitorError: The text is not a positive duration.
    """
    # Lazy imports here and below (noqa: PLC0415) of pandas, opsloop.loop, opsloop.monitor: each
    # loads with the command that needs it, not with every CLI call.
    import pandas as pd  # noqa: PLC0415

    # pandas reads the usual unit suffixes (s, m/min, h, d) and combinations like 1h30m.
    try:
        value: timedelta = pd.Timedelta(text.strip()).to_pytimedelta()
    except (ValueError, TypeError):
        raise MonitorError(
            f"window {text!r} is not a duration", hint="use e.g. 30s, 15m, 1h or 1d"
        ) from None
    if value <= timedelta(0):
        raise MonitorError(f"window {text!r} must be longer than zero")
    return value


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC.

    Raises:
        MonitorError: The text is not an ISO time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitorError(
            f"time {text!r} is not an ISO 8601 time", hint="use e.g. 2026-03-02T10:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@app.command("run")
def run(
    deployment: list[str] | None = typer.Option(
        None, "--deployment", "-d", help="Only this deployment (repeatable); default: all."
    ),
    window: str | None = typer.Option(
        None,
        "--window",
        "-w",
        help=WINDOW_HELP + " Default: each deployment's own, else the project's (15m).",
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        help="Monitor the windows that ended by this ISO time (UTC unless it has a zone); "
        "default: now.",
    ),
) -> None:
    """Monitor every complete window since the last run, once; alert and open incidents."""
    from opsloop.loop.monitoring import monitor_step  # noqa: PLC0415

    length = parse_window(window) if window is not None else None
    end = parse_time(until) if until is not None else None
    step = monitor_step(
        project(), deployments=deployment or None, window=length, until=end, progress=True
    )
    result = step.monitor
    if not result.windows:
        console.print("nothing to monitor: no complete window with predictions since the last run")
    else:
        table = Table(title=f"monitored {len(result.windows)} window(s)", title_justify="left")
        for col in ("deployment", "windows", "requests", "rows", "labelled", "drifting now"):
            table.add_column(col, overflow="fold" if col == "drifting now" else "ellipsis")
        for name in result.deployments:
            mine = [w for w in result.windows if w.deployment == name]
            last = mine[-1]
            drifting = "; ".join(
                f"{key}: {', '.join(features) or '-'}" for key, features in last.drifted.items()
            )
            table.add_row(
                escape(name),
                str(len(mine)),
                str(sum(w.requests for w in mine)),
                str(sum(w.rows for w in mine)),
                str(sum(w.labelled for w in mine)),
                escape(drifting or "-"),
            )
        console.print(table)
        console.print(f"{result.points} series points written")
    if step.alerts:
        console.print(
            f"{len(step.alerts)} alert(s); incidents opened: "
            f"{', '.join(map(str, step.opened)) or '-'}, updated: "
            f"{', '.join(map(str, step.ingest.updated)) or '-'}"
        )
    for note in step.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)


@app.command("report")
def report(
    deployment: str = typer.Argument(..., help="The deployment."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file (default: drift-<deployment>.html)."
    ),
    window: str | None = typer.Option(
        None,
        "--window",
        "-w",
        help=WINDOW_HELP + " Default: the deployment's own, else the project's (15m).",
    ),
) -> None:
    """Write the HTML drift report of a deployment's latest monitored window."""
    from opsloop.loop.monitoring import write_report  # noqa: PLC0415

    target = out if out is not None else Path(f"drift-{deployment}.html")
    length = parse_window(window) if window is not None else None
    written = write_report(project(), deployment, target, window=length)
    console.print(
        f"report written to {escape(str(written.path))} (window "
        f"{written.window.total_seconds():g}s: {escape(written.window_source)})",
        soft_wrap=True,
    )


@app.command("prune")
def prune() -> None:
    """Apply the prediction log's retention once (opsloop.yaml monitoring.prediction_log)."""
    from opsloop.monitor.retention import prune_pass  # noqa: PLC0415

    result = prune_pass(project())
    console.print(
        f"deleted {result.predictions} request(s), {result.feedback} label(s) and "
        f"{result.chunks} chunk(s) in {result.batches} batch(es)"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)
