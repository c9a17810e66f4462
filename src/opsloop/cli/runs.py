"""``opsloop runs list|show``."""

from __future__ import annotations

import typer
from rich.table import Table

from opsloop.cli._common import ago, console, duration, project, status

app = typer.Typer(help="Read tracked runs.", no_args_is_help=True)


@app.command("list")
def list_runs(
    kind: str | None = typer.Option(None, help="run, pipeline, step or trial"),
    status_: str | None = typer.Option(None, "--status", help="running, finished, failed, killed"),
    limit: int = typer.Option(30, help="How many runs to show."),
    all_kinds: bool = typer.Option(False, "--all", help="Include tuning trials."),
) -> None:
    """List runs, newest first."""
    store = project().store
    runs = store.runs.list(kind=kind, status=status_, limit=limit if all_kinds or kind else 500)
    if kind is None and not all_kinds:
        runs = [r for r in runs if r.kind != "trial"][:limit]
    table = Table(title="runs", title_justify="left")
    for col in ("id", "name", "kind", "status", "started", "duration", "metrics"):
        table.add_column(col, overflow="fold" if col == "metrics" else "ellipsis")
    for r in runs:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())[:4])
        table.add_row(
            r.id[:12],
            r.name,
            r.kind,
            status(r.status),
            ago(r.started_at),
            duration(r.duration_s),
            metrics,
        )
    console.print(table)


@app.command("show")
def show(run_id: str = typer.Argument(..., help="Run id (or a unique prefix).")) -> None:
    """Show a run: parameters, metrics, tags, artifacts and pipeline steps."""
    store = project().store
    r = store.runs.get(run_id)
    console.print(f"[bold]{r.name}[/bold]  {r.id}  {status(r.status)}")
    console.print(
        f"kind {r.kind} · started {r.started_at:%Y-%m-%d %H:%M:%S} UTC · "
        f"duration {duration(r.duration_s)} · user {r.user} · commit {r.git_commit or '-'}"
    )
    if r.parent_id:
        console.print(f"parent {r.parent_id}")
    if r.host is not None and r.status in ("running", "killed"):
        # Whose process writes it, and when it last said it was alive: why it is (not) killed.
        console.print(f"process {r.pid} on {r.host} · last heartbeat {ago(r.heartbeat_at)}")
    if r.error:
        console.print(f"[red]error:[/red] {r.error}")
    for title, data in (("params", r.params), ("metrics (latest)", r.metrics), ("tags", r.tags)):
        if data:
            t = Table(title=title, title_justify="left")
            t.add_column("key")
            t.add_column("value", overflow="fold")
            for k, v in sorted(data.items()):
                t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
            console.print(t)
    arts = store.runs.list_artifacts(r.id)
    if arts:
        t = Table(title="artifacts", title_justify="left")
        for col in ("path", "kind", "size", "digest"):
            t.add_column(col)
        for a in arts:
            t.add_row(a.path, a.kind, f"{a.size:,}", a.digest[:19])
        console.print(t)
    steps = store.steps.list(r.id)
    if steps:
        t = Table(title="steps", title_justify="left")
        for col in ("step", "status", "attempts", "duration", "cpu s", "peak MiB", "error"):
            t.add_column(col, overflow="fold" if col == "error" else "ellipsis")
        for s in steps:
            took = (
                (s.ended_at - s.started_at).total_seconds() if s.ended_at and s.started_at else None
            )
            t.add_row(
                s.name,
                status(s.status),
                str(s.attempts),
                duration(took),
                "-" if s.cpu_seconds is None else f"{s.cpu_seconds:.2f}",
                "-" if s.peak_memory_bytes is None else f"{s.peak_memory_bytes / 2**20:.0f}",
                (s.error or "")[:120],
            )
        console.print(t)
    children = store.runs.list(parent_id=r.id, limit=1000)
    if children:
        console.print(f"{len(children)} child run(s): 'opsloop runs list --all' lists them")
