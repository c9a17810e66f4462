"""``opsloop schedules list|history``: the schedules of opsloop.yaml, which ``opsloop up``
runs, and what each did."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import ago, console, project

app = typer.Typer(
    help="Schedules of opsloop.yaml (run by 'opsloop up') and their history.",
    no_args_is_help=True,
)

_STYLE = {
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "replaced": "cyan",
    "interrupted": "red",
}


def _styled(word: str) -> str:
    style = _STYLE.get(word, "white")
    return f"[{style}]{word}[/{style}]"


@app.command("list")
def list_cmd() -> None:
    """List the schedules: trigger, policies, next cron time and last run."""
    from croniter import croniter  # noqa: PLC0415

    from opsloop.spec.monitoring import format_duration  # noqa: PLC0415

    proj = project()
    schedules = proj.spec.schedules if proj.spec is not None else {}
    if not schedules:
        console.print("No schedules in opsloop.yaml (see 'schedules:' in the README).")
        return
    last = proj.store.schedules.last_runs(list(schedules))
    table = Table(title="schedules", title_justify="left")
    for col in ("schedule", "trigger", "run", "concurrency", "missed", "next", "last run"):
        table.add_column(col)
    now = datetime.now(UTC)
    for name, sched in schedules.items():
        if sched.cron is not None:
            trigger = f"cron {sched.cron}"
            upcoming = croniter(sched.cron, now).get_next(datetime)
            nxt = f"{upcoming:%Y-%m-%d %H:%M} UTC"
        elif sched.new_data:
            trigger, nxt = f"new data (every {format_duration(sched.check_every)})", "-"
        else:
            trigger, nxt = f"incident {sched.incident}", "-"
        if sched.suspend:
            nxt = "[dim]suspended[/dim]"
        run = last.get(name)
        shown = f"#{run.id} {_styled(run.status)} {ago(run.due_at)}" if run is not None else "-"
        table.add_row(
            escape(name),
            escape(trigger),
            escape(sched.run),
            sched.concurrency,
            sched.missed,
            nxt,
            shown,
        )
    console.print(table)


@app.command("history")
def history(
    name: str | None = typer.Argument(None, help="Only this schedule."),
    limit: int = typer.Option(30, min=1, help="Show the newest N entries."),
) -> None:
    """Show what the schedules did, newest first: runs started, skipped, replaced."""
    proj = project()
    runs = proj.store.schedules.history(name, limit=limit)
    if not runs:
        console.print(
            "No schedule has been due yet." if name is None else f"'{name}' has no history."
        )
        return
    table = Table(title="schedule history", title_justify="left")
    for col in ("#", "schedule", "trigger", "due (UTC)", "status", "took", "why", "log"):
        table.add_column(col)
    for run in runs:
        took = (
            f"{(run.finished_at - run.started_at).total_seconds():.1f}s"
            if run.finished_at is not None and run.started_at is not None
            else "-"
        )
        table.add_row(
            str(run.id),
            escape(run.schedule),
            run.trigger,
            f"{run.due_at:%Y-%m-%d %H:%M:%S}",
            _styled(run.status),
            took,
            escape(run.reason),
            escape(str(run.details.get("log", ""))),
        )
    console.print(table)
