"""``opsloop keys [create|rotate|remove|export-public]`` and ``opsloop models export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import console, project

if TYPE_CHECKING:
    from opsloop.secops.keys import KeyRing

app = typer.Typer(
    help="Show, create and rotate the project's model-signing keys (kept outside the "
    "repository, in the user's config folder, or OPSLOOP_SIGNING_KEY).",
    invoke_without_command=True,
)


def _ring() -> KeyRing:
    from opsloop.secops.keys import KeyRing  # noqa: PLC0415

    return KeyRing(project().name)


@app.callback()
def show(ctx: typer.Context) -> None:
    """List the keys the project signs with and trusts."""
    if ctx.invoked_subcommand is not None:
        return
    from opsloop.registry.signing import project_trusted_keys  # noqa: PLC0415

    proj = project()
    ring = _ring()
    current = ring.current()
    keys = project_trusted_keys(proj) if current is not None else []
    console.print(f"keys of project '{escape(proj.name)}' in {escape(str(ring.dir))}")
    if not keys:
        console.print(
            "no signing key yet: 'opsloop keys create' (or registering a model) makes one"
        )
        return
    table = Table(title="trusted keys", title_justify="left")
    for col in ("key id", "role", "file"):
        table.add_column(col)
    for key in keys:
        role = "signing" if current is not None and key.key_id == current.key_id else key.source
        table.add_row(key.short_id, escape(role), escape(str(key.path or "-")))
    console.print(table)


@app.command("create")
def create() -> None:
    """Make the project's key pair (refused if it has one; use rotate)."""
    key = _ring().create()
    console.print(
        f"created signing key {key.public.short_id} ({escape(str(key.private_key_path))})"
    )


@app.command("rotate")
def rotate() -> None:
    """Replace the signing key; the old public key stays trusted until removed."""
    new, old = _ring().rotate()
    retired = f"; {old.short_id} retired, still trusted" if old is not None else ""
    console.print(f"signing key is now {new.public.short_id}{retired}")


@app.command("remove")
def remove(key_id: str = typer.Argument(..., help="Id (or prefix) of a retired key.")) -> None:
    """Stop trusting a retired public key."""
    removed = _ring().remove(key_id)
    console.print(f"removed key {removed.short_id}")


@app.command("export-public")
def export_public(
    out: Path = typer.Option(..., "--out", help="File to write the PEM public key to."),
) -> None:
    """Write the signing key's public key (PEM), for `model_signing verify key`."""
    key = _ring().export_public(out)
    console.print(f"wrote public key {key.short_id} to {escape(str(out))}")


def export_model(
    uri: str = typer.Argument(..., help="models:/NAME/VERSION or models:/NAME@ALIAS."),
    out: Path = typer.Option(..., "--out", help="Folder to write model/ and model.sig to."),
) -> None:
    """Write a verified version's files to OUT/model/ and its OpenSSF signature bundle to
    OUT/model.sig (check it with `model_signing verify key --public_key key.pub
    --signature OUT/model.sig OUT/model`)."""
    from opsloop.registry import export_model as export  # noqa: PLC0415

    proj = project()
    ref = export(uri, out, store=proj.store, artifacts=proj.artifacts)
    console.print(
        f"exported {ref.uri} to {escape(str(out / 'model'))} "
        f"with its signature {escape(str(out / 'model.sig'))}"
    )
