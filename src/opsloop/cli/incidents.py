"""``opsloop incidents list|show|approve|reject|resolve``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import ago, console, hidden_note, plural, project

app = typer.Typer(
    help="Correlated incidents, their root causes and remediation.", no_args_is_help=True
)

_STYLE = {
    "open": "red",
    "resolved": "green",
    "critical": "bold red",
    "warning": "yellow",
    "info": "cyan",
    "firing": "red",
    "awaiting_approval": "bold yellow",
    "approved": "yellow",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "dim",
    "rejected": "dim",
    "dry_run": "cyan",
}


_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{8,}")


def _node(node: str) -> str:
    """A lineage node with its digest shortened, for tables."""
    return escape(_DIGEST.sub(r"\1…", node))


def _styled(word: str) -> str:
    style = _STYLE.get(word, "white")
    return f"[{style}]{word}[/{style}]"


def _actor() -> str:
    proj = project()
    return proj.settings.resolved_actor()


def _compact(details: dict[str, Any], limit: int = 240) -> str:
    # Lazy imports here and below (noqa: PLC0415) of opsloop.aiops, opsloop.loop: each loads with
    # the command that needs it, not with every CLI call.
    from opsloop.aiops.evidence import describe_details  # noqa: PLC0415

    text = describe_details(details)
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


@app.command("list")
def list_cmd(
    status_: str | None = typer.Option(
        None, "--status", help="Only incidents in this status: open or resolved."
    ),
    kind: str | None = typer.Option(None, help="Only this kind (data_drift, latency …)."),
    limit: int = typer.Option(30, min=1, help="Show the newest N incidents."),
    all_rows: bool = typer.Option(
        False, "--all", help="Show every incident: resolved ones too, and no limit."
    ),
) -> None:
    """List incidents, newest first; only open ones unless asked for."""
    from opsloop.aiops.incidents import list_incidents  # noqa: PLC0415

    store = project().store
    if status_ == "all":  # the spelling of earlier versions
        status_, all_rows = None, True
    wanted = status_ if status_ is not None or all_rows else "open"
    counts = store.incidents.count_by_status(kind=kind)
    matching = sum(n for s, n in counts.items() if wanted is None or s == wanted)
    cap = max(matching, 1) if all_rows else limit
    incidents = list_incidents(store, status=wanted, kind=kind, limit=cap)
    title = f"incidents ({wanted or 'all'}{f', {kind}' if kind else ''})"
    table = Table(title=title, title_justify="left")
    for col in ("id", "status", "severity", "kind", "title", "root cause", "alerts", "opened"):
        table.add_column(col, overflow="fold" if col in ("title", "root cause") else "ellipsis")
    for inc in incidents:
        table.add_row(
            str(inc.id),
            _styled(inc.status),
            _styled(inc.severity),
            inc.kind,
            escape(inc.title),
            _node(inc.root_cause or "-"),
            str(inc.alert_count),
            ago(inc.opened_at),
        )
    if incidents:
        console.print(table)
    else:
        of_kind = f" of kind {kind}" if kind else ""
        console.print(f"no {wanted + ' ' if wanted else ''}incidents{of_kind}")
    parts = []
    hidden = 0
    if status_ is None and not all_rows:
        for other, n in sorted(counts.items()):
            if other != wanted and n:
                parts.append(plural(n, f"{other} incident"))
                hidden += n
    older = matching - len(incidents)
    if older > 0:
        parts.append(plural(older, "older incident"))
        hidden += older
    note = hidden_note(parts, hidden)
    if note:
        console.print(note)


@app.command("show")
def show(
    incident_id: int = typer.Argument(..., help="Incident id."),
    charts: Path | None = typer.Option(
        None,
        "--charts",
        help="Also write evidence charts of the alerted series and an index.html into DIR.",
        metavar="DIR",
    ),
) -> None:
    """Show an incident: root causes, then its timeline of alerts, actions and events."""
    from opsloop.aiops.incidents import get_incident, timeline  # noqa: PLC0415

    store = project().store
    inc = get_incident(store, incident_id)
    console.print(f"[bold]incident {inc.id}[/bold]  {_styled(inc.status)}  {_styled(inc.severity)}")
    console.print(escape(inc.title))
    opened = f"opened {inc.opened_at:%Y-%m-%d %H:%M:%S} UTC"
    resolved = f" · resolved {inc.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if inc.resolved_at else ""
    deployments = escape(", ".join(inc.deployments) or "-")
    console.print(f"kind {inc.kind} · {opened}{resolved} · deployments {deployments}")
    if inc.root_causes:
        t = Table(title="root-cause candidates", title_justify="left")
        for col in ("#", "node", "explains", "first alert", "why"):
            t.add_column(col, overflow="fold" if col in ("node", "why") else "ellipsis")
        for n, rc in enumerate(inc.root_causes, 1):
            node = _node(str(rc["node"])) + (" (inferred)" if rc.get("inferred") else "")
            t.add_row(
                str(n),
                node,
                str(rc.get("explains", "")),
                str(rc.get("first_alert_at", ""))[:19].replace("T", " "),
                escape(str(rc.get("reason", ""))),
            )
        console.print(t)
    t = Table(title="timeline", title_justify="left")
    for col in ("time (UTC)", "type", "what", "by", "details"):
        t.add_column(col, overflow="fold" if col in ("what", "details") else "ellipsis")
    for e in timeline(store, incident_id):
        what = escape(e.what)
        status = e.details.get("status") if e.type == "action" else None
        if isinstance(status, str):
            what = what.replace(status, _styled(status))
        t.add_row(f"{e.time:%Y-%m-%d %H:%M:%S}", e.type, what, escape(e.actor), _compact(e.details))
    console.print(t)
    if charts is not None:
        from opsloop.aiops.evidence import write_evidence  # noqa: PLC0415

        written = write_evidence(store, incident_id, charts)
        n = len(written) - 1
        console.print(f"evidence: {escape(str(written[-1]))} ({n} chart{'s' if n != 1 else ''})")


@app.command("approve")
def approve_cmd(
    incident_id: int = typer.Argument(..., help="Incident id."),
    by: str | None = typer.Option(None, help="Who approves (default: the current user)."),
) -> None:
    """Approve the incident's actions that await approval, and run them now."""
    from opsloop.aiops.remediation import approve  # noqa: PLC0415
    from opsloop.loop.actions import default_executor  # noqa: PLC0415

    proj = project()
    actions = approve(proj.store, incident_id, default_executor(proj), by=by or _actor())
    _print_actions(actions)


@app.command("reject")
def reject_cmd(
    incident_id: int = typer.Argument(..., help="Incident id."),
    by: str | None = typer.Option(None, help="Who rejects (default: the current user)."),
    reason: str = typer.Option("", help="Why, for the timeline."),
) -> None:
    """Reject the incident's actions that await approval; nothing runs."""
    from opsloop.aiops.remediation import reject  # noqa: PLC0415

    store = project().store
    _print_actions(reject(store, incident_id, by=by or _actor(), reason=reason))


@app.command("resolve")
def resolve_cmd(
    incident_id: int = typer.Argument(..., help="Incident id."),
    note: str = typer.Option("", help="Why it is resolved, for the timeline."),
    by: str | None = typer.Option(None, help="Who resolves (default: the current user)."),
) -> None:
    """Mark an incident resolved (its parked actions are cancelled)."""
    from opsloop.aiops.incidents import resolve  # noqa: PLC0415

    store = project().store
    inc = resolve(store, incident_id, note=note, by=by or _actor())
    console.print(f"incident {inc.id} {_styled(inc.status)}")


def _print_actions(actions: list[Any]) -> None:
    t = Table(title="actions", title_justify="left")
    for col in ("id", "action", "status", "policy", "by", "result / error"):
        t.add_column(col, overflow="fold" if col == "result / error" else "ellipsis")
    for a in actions:
        outcome = escape(a.error) if a.error else _compact(a.result)
        t.add_row(
            str(a.id), a.action, _styled(a.status), a.policy, escape(a.approved_by or ""), outcome
        )
    console.print(t)
