"""``opsloop models list|show|alias set|alias delete``."""

from __future__ import annotations

import typer
from rich.table import Table

from opsloop.cli._common import ago, console, project

app = typer.Typer(help="Read and manage the model registry.", no_args_is_help=True)
alias_app = typer.Typer(help="Move or remove model aliases.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


@app.command("list")
def list_models() -> None:
    """List registered models with their latest version and aliases."""
    store = project().store
    table = Table(title="models", title_justify="left")
    for col in ("name", "latest", "aliases", "updated", "description"):
        table.add_column(col)
    for mdl in store.models.list():
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(mdl.aliases.items()))
        table.add_row(
            mdl.name,
            f"v{mdl.latest_version}" if mdl.latest_version else "-",
            aliases or "-",
            ago(mdl.updated_at),
            mdl.description,
        )
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Show a model's versions, aliases, metrics and gate results."""
    store = project().store
    mdl = store.models.get(name)
    console.print(f"[bold]{mdl.name}[/bold]  {mdl.description}")
    if mdl.tags:
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(mdl.tags.items())))
    table = Table(title="versions", title_justify="left")
    for col in ("version", "aliases", "created", "run", "metrics", "gates", "artifact"):
        table.add_column(col, overflow="fold" if col == "metrics" else "ellipsis")
    for v in store.models.list_versions(name):
        metrics = v.details.get("metrics") or {}
        shown = ", ".join(
            f"{k}={val:.4g}" for k, val in list(metrics.items())[:3] if isinstance(val, int | float)
        )
        gates = v.details.get("gates")
        gate_word = "-"
        if isinstance(gates, list) and gates:
            passed = all(bool(g.get("passed")) for g in gates if isinstance(g, dict))
            gate_word = "[green]passed[/green]" if passed else "[red]failed[/red]"
        table.add_row(
            f"v{v.version}",
            ", ".join(v.aliases) or "-",
            ago(v.created_at),
            (v.run_id or "-")[:12],
            shown or "-",
            gate_word,
            v.artifact_digest[:19],
        )
    console.print(table)


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion."),
    version: int = typer.Argument(..., help="Version number the alias points at."),
) -> None:
    """Point an alias at a version."""
    store = project().store
    previous = store.models.set_alias(name, alias, version)
    moved = f" (was v{previous})" if previous is not None and previous != version else ""
    console.print(f"{name}@{alias} → v{version}{moved}")


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
) -> None:
    """Remove an alias."""
    project().store.models.delete_alias(name, alias)
    console.print(f"{name}@{alias} removed")
