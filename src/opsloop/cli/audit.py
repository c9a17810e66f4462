"""``opsloop audit list|verify``: the audit trail, and whether anyone changed it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import console, plural, project

app = typer.Typer(
    help="The audit trail: who changed what, from where and when, hash-chained.",
    no_args_is_help=True,
)

_SHORT = 60
_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{8,}")


def parse_since(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it has a zone), or a duration back from now (``2h``).

    Raises:
        typer.BadParameter: It is neither.
    """
    from opsloop.spec.monitoring import parse_duration  # noqa: PLC0415 - loads with the command

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is neither an ISO time nor a duration: use e.g. "
                "2026-03-02T10:00, 30m, 2h or 7d",
                param_hint="--since",
            ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _word(value: Any) -> str:
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value, sort_keys=True)


def _short(value: Any) -> str:
    """A state in a few words: ``-`` for none, ``k=v, k=v`` for a mapping (keys without a
    value left out), digests shortened."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_word(v)}" for k, v in value.items() if v is not None)
    else:
        text = _word(value)
    text = _DIGEST.sub(r"\1…", text)
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def change_text(details: dict[str, Any]) -> str:
    """``before → after`` of an event that changed a state, else empty."""
    if "before" not in details and "after" not in details:
        return ""
    return f"{_short(details.get('before'))} → {_short(details.get('after'))}"


@app.command("list")
def list_cmd(
    object_: str | None = typer.Option(
        None,
        "--object",
        help="Only events of this object: TYPE or TYPE:ID (model:churn, deployment:web, "
        "model_version:churn/3).",
        metavar="TYPE[:ID]",
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="Only this kind (alias.set); end with * for a prefix (alias.*)."
    ),
    actor: str | None = typer.Option(None, "--actor", help="Only events by this actor."),
    since: str | None = typer.Option(
        None, "--since", help="Only events since an ISO time, or for the last 30m, 2h, 7d …"
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N events."),
    as_json: bool = typer.Option(False, "--json", help="Print the events as JSON."),
) -> None:
    """List audit events, oldest of the newest N first: time, actor, source, kind, object
    and what changed."""
    object_type, object_id = None, None
    if object_:
        object_type, _, rest = object_.partition(":")
        object_id = rest or None
    when = parse_since(since) if since is not None else None
    store = project().store
    events = store.events.list(
        object_type=object_type,
        object_id=object_id,
        kind=kind,
        actor=actor,
        since=when,
        limit=limit,
        newest_first=True,
    )
    events.reverse()
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    if not events:
        console.print("no audit events" + (" match" if object_ or kind or actor or since else ""))
        return
    table = Table(title=f"audit trail ({plural(len(events), 'event')})", title_justify="left")
    for col in ("id", "time (UTC)", "actor", "source", "kind", "object", "before → after"):
        table.add_column(col, overflow="fold" if col == "before → after" else "ellipsis")
    for e in events:
        table.add_row(
            str(e.id),
            e.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            escape(e.actor),
            escape(e.source or "-"),
            escape(e.kind),
            escape(f"{e.object_type}:{e.object_id}"),
            escape(change_text(e.details)),
        )
    console.print(table)


def parse_anchor(text: str) -> tuple[int, str]:
    """``POSITION:SHA256`` (as ``opsloop audit verify`` prints a head) as a pair."""
    position, sep, digest = text.partition(":")
    if not sep or not position.strip().isdigit():
        raise typer.BadParameter(
            f"{text!r} is not POSITION:SHA256 (e.g. 1234:9f86d081884c7d65...)",
            param_hint="--expect",
        )
    return int(position), digest.strip()


@app.command("verify")
def verify(
    expect: list[str] = typer.Option(
        [],
        "--expect",
        metavar="POSITION:SHA256",
        help="A head recorded earlier, kept where the database's writers cannot change it: "
        "the entry at that position must still have that hash (repeatable). Catches a chain "
        "rewritten with every hash recomputed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the audit trail's hash chain: every entry as written, in order, none missing or
    added. Exits 1 naming the first broken entry and how it broke."""
    anchors = [parse_anchor(text) for text in expect]
    store = project().store
    if as_json:
        result = store.events.verify(expect=anchors)
        typer.echo(json.dumps({**result.model_dump(mode="json"), "intact": result.intact}))
        if not result.intact:
            raise typer.Exit(1)
        return
    result = store.events.check(expect=anchors)
    console.print(f"audit trail intact: {plural(result.entries, 'entry', 'entries')}")
    if result.head_hash is not None:
        console.print(f"head: position {result.head_seq}, sha256 {result.head_hash}")
        console.print(
            "keep it outside the database: 'opsloop audit verify --expect "
            f"{result.head_seq}:{result.head_hash[:16]}' later proves the chain up to it was "
            "not rewritten"
        )
