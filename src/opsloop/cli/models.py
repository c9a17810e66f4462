"""``opsloop models list|show|alias set|alias delete``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import (
    ago,
    console,
    hidden_note,
    model_aliases,
    plural,
    project,
    report_alias_moves,
)
from opsloop.cli.runs import metric_order

if TYPE_CHECKING:
    from opsloop.spec.schema import SecuritySection
    from opsloop.store.types import ModelVersionInfo

app = typer.Typer(help="Read and manage the model registry.", no_args_is_help=True)
alias_app = typer.Typer(help="Move or remove model aliases.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


@app.command("list")
def list_models(
    limit: int = typer.Option(30, min=1, help="Show the N most recently updated models."),
    all_rows: bool = typer.Option(False, "--all", help="Show every model, no limit."),
) -> None:
    """List registered models with their latest version and aliases."""
    store = project().store
    models = sorted(store.models.list(), key=lambda m: m.updated_at, reverse=True)
    shown = models if all_rows else models[:limit]
    table = Table(title="models", title_justify="left")
    for col in ("name", "latest", "aliases", "updated", "description"):
        table.add_column(col)
    for mdl in shown:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(mdl.aliases.items()))
        table.add_row(
            mdl.name,
            f"v{mdl.latest_version}" if mdl.latest_version else "-",
            aliases or "-",
            ago(mdl.updated_at),
            mdl.description,
        )
    if shown:
        console.print(table)
    else:
        console.print("no registered models yet")
    older = len(models) - len(shown)
    note = hidden_note([plural(older, "less recently updated model")], older)
    if note:
        console.print(note)


def _metrics(v: ModelVersionInfo) -> dict[str, float]:
    """The version's recorded metrics: packaged with the model (``MLmodel``), else the
    version's own details."""
    package = v.details.get("package")
    found = package.get("metrics") if isinstance(package, dict) else None
    if not isinstance(found, dict) or not found:
        found = v.details.get("metrics")
    if not isinstance(found, dict):
        return {}
    return {str(k): float(x) for k, x in found.items() if isinstance(x, int | float)}


def _gates(v: ModelVersionInfo) -> str:
    gates = v.details.get("gates")
    if not isinstance(gates, list) or not gates:
        return "-"
    failed = [str(g.get("name")) for g in gates if isinstance(g, dict) and not g.get("passed")]
    if not failed:
        return f"[green]passed[/green] ({len(gates)})"
    return f"[red]failed[/red]: {escape(', '.join(failed))}"


def _security(v: ModelVersionInfo, policy: SecuritySection, failed_alias: str | None) -> str:
    """Scan status, signature and the admission verdict, one line each."""
    from opsloop.secops import admit, scan_status  # noqa: PLC0415 - with the command only

    shown = scan_status(v.details)
    style = {"passed": "green", "failed": "red"}.get(shown)
    lines = [f"scan [{style}]{shown}[/{style}]" if style else f"scan {shown}"]
    record = v.details.get("signature")
    key = record.get("key_id") if isinstance(record, dict) else None
    lines.append(f"signed (key {escape(str(key))[:12]})" if key else "[red]unsigned[/red]")
    # A version marked by the failed-gates alias is judged without its gates, as alias moves are.
    decision = admit(v.details, policy, gates=failed_alias not in v.aliases)
    lines.append(
        "[green]admitted[/green]" if decision else f"[red]refused[/red]: {escape(decision.message)}"
    )
    return "\n".join(lines)


@app.command("show")
def show(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Show a model's versions with their run, metrics, gate results, scan, signature and
    whether the project's admission policy admits them."""

    proj = project()
    store = proj.store
    mdl = store.models.get(name)
    primary = proj.spec.problem.primary_metric if proj.spec and proj.spec.problem else None
    console.print(f"[bold]{mdl.name}[/bold]  {mdl.description}")
    if mdl.tags:
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(mdl.tags.items())))
    table = Table(title="versions", title_justify="left")
    from opsloop.registry.admission import admission_policy, failed_gates_alias  # noqa: PLC0415

    policy, failed_alias = admission_policy(proj), failed_gates_alias(proj)
    folded = ("metrics", "gates", "security")
    for col in ("version", "aliases", "created", "run", "metrics", "gates", "security", "artifact"):
        table.add_column(col, overflow="fold" if col in folded else "ellipsis")
    for v in store.models.list_versions(name):
        metrics = _metrics(v)
        keys = metric_order(list(metrics), primary)[:4]
        shown = ", ".join(f"{k}={metrics[k]:.4g}" for k in keys)
        table.add_row(
            f"v{v.version}",
            ", ".join(v.aliases) or "-",
            ago(v.created_at),
            (v.run_id or "-")[:12],
            shown or "-",
            _gates(v),
            _security(v, policy, failed_alias),
            v.artifact_digest[:19],
        )
    console.print(table)


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion."),
    version: int = typer.Argument(..., help="Version number the alias points at."),
    allow_rollback: bool = typer.Option(
        False, "--allow-rollback", help="Allow moving the alias back to an older version."
    ),
) -> None:
    """Point an alias at a version; moving it back to an older one is a rollback and needs
    --allow-rollback. Deployments that follow the alias are named."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop.lifecycle: each loads with the command
    # that needs it, not with every CLI call.
    from opsloop.lifecycle.aliases import move_alias  # noqa: PLC0415

    proj = project()
    before = model_aliases(proj, name)
    move = move_alias(proj.store, name, alias, version, allow_rollback=allow_rollback)
    moved = f" (was v{move.previous})" if move.moved and move.previous is not None else ""
    what = " [bold yellow]rollback[/bold yellow]" if move.rollback else ""
    console.print(f"{name}@{alias} → v{version}{moved}{what}")
    report_alias_moves(proj, name, before, model_aliases(proj, name))


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
) -> None:
    """Remove an alias."""
    proj = project()
    before: dict[str, Any] = model_aliases(proj, name)
    proj.store.models.delete_alias(name, alias)
    console.print(f"{name}@{alias} removed")
    report_alias_moves(proj, name, before, model_aliases(proj, name))
