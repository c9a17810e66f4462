"""``opsloop runs list|show``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from opsloop.cli._common import ago, console, duration, hidden_note, plural, project, status
from opsloop.errors import NotFoundError

if TYPE_CHECKING:
    from opsloop.store.types import RunInfo

app = typer.Typer(help="Read tracked runs.", no_args_is_help=True)


def metric_order(names: list[str], primary: str | None) -> list[str]:
    """Metric names with the project's declared metric first (as logged by the lifecycle,
    ``test_<metric>``, or by user code, ``<metric>``), then the rest by name."""
    first = [m for m in (f"test_{primary}", primary) if primary and m in names]
    return first + sorted(m for m in names if m not in first)


def _shown_metrics(metrics: dict[str, float], primary: str | None, n: int = 4) -> str:
    keys = metric_order(list(metrics), primary)[:n]
    more = len(metrics) - len(keys)
    text = ", ".join(f"{k}={metrics[k]:.4g}" for k in keys)
    return text + (f" (+{more})" if more > 0 else "")


@app.command("list")
def list_runs(
    kind: str | None = typer.Option(None, help="Only runs of this kind: run, pipeline, trial."),
    status_: str | None = typer.Option(
        None, "--status", help="Only runs in this status: running, finished, failed, killed."
    ),
    limit: int = typer.Option(30, min=1, help="Show the newest N runs."),
    all_rows: bool = typer.Option(
        False, "--all", help="Show every run: tuning trials too, and no limit."
    ),
) -> None:
    """List runs, newest first; tuning trials are hidden unless asked for."""
    proj = project()
    store = proj.store
    primary = proj.spec.problem.primary_metric if proj.spec and proj.spec.problem else None
    counts = store.runs.count_by_kind(status=status_)
    hide_trials = kind is None and not all_rows
    kinds = (
        [kind] if kind is not None else sorted(k for k in counts if k != "trial" or not hide_trials)
    )
    available = sum(counts.get(k, 0) for k in kinds)
    cap = available if all_rows else limit
    runs = sorted(
        (r for k in kinds for r in store.runs.list(kind=k, status=status_, limit=max(cap, 1))),
        key=lambda r: r.started_at,
        reverse=True,
    )[:cap]
    table = Table(title="runs", title_justify="left")
    for col in ("id", "name", "kind", "status", "started", "duration", "metrics"):
        table.add_column(col, overflow="fold" if col == "metrics" else "ellipsis")
    for r in runs:
        table.add_row(
            r.id[:12],
            r.name,
            r.kind,
            status(r.status),
            ago(r.started_at),
            duration(r.duration_s),
            _shown_metrics(r.metrics, primary),
        )
    if runs:
        console.print(table)
    else:
        where = f" {status_}" if status_ else ""
        console.print(f"no{where} runs" + (f" of kind {kind}" if kind else ""))
    trials = counts.get("trial", 0) if hide_trials else 0
    older = available - len(runs)
    parts = []
    if trials:
        parts.append(plural(trials, "tuning trial"))
    if older:
        parts.append(plural(older, "older run"))
    note = hidden_note(parts, trials + older)
    if note:
        console.print(note)


def _commit(r: RunInfo) -> str:
    """The project's commit, and whether the folder had uncommitted changes."""
    if not r.git_commit:
        return "- (the project is not in a Git repository)"
    if r.tags.get("opsloop.git_dirty") == "true" and not r.git_commit.endswith("-dirty"):
        return f"{r.git_commit} (with uncommitted changes)"
    return r.git_commit


@app.command("show")
def show(
    run_id: str = typer.Argument(
        "latest", help="Run id, a unique prefix of one, or 'latest' (the default)."
    ),
) -> None:
    """Show a run: parameters, metrics, tags, artifacts and pipeline steps."""
    store = project().store
    if run_id == "latest":
        # The run 'opsloop runs list' shows first: the newest that is not a tuning trial.
        kinds = [k for k in store.runs.count_by_kind() if k != "trial"]
        newest = [r for k in kinds for r in store.runs.list(kind=k, limit=1)]
        if not newest:
            raise NotFoundError("no runs yet in this project", hint="'opsloop run' makes one")
        run_id = max(newest, key=lambda r: r.started_at).id
    r = store.runs.get(run_id)
    console.print(f"[bold]{r.name}[/bold]  {r.id}  {status(r.status)}")
    console.print(
        f"kind {r.kind} · started {r.started_at:%Y-%m-%d %H:%M:%S} UTC · "
        f"duration {duration(r.duration_s)} · user {r.user} · commit {_commit(r)}"
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
