"""``opsloop data diff|versions``: compare versions of a data set, list them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import ago, console, project

app = typer.Typer(help="Compare and list data set versions.", no_args_is_help=True)

DIFF_EXAMPLES = """Examples:

  opsloop data diff lifecycle.ingest.data@v1 lifecycle.ingest.data@latest --key id

  opsloop data diff data/march.csv data/april.csv --key id --html diff.html
"""


@app.command("diff", epilog=DIFF_EXAMPLES)
def diff(
    old: str = typer.Argument(
        ...,
        metavar="OLD",
        help="PIPELINE.STEP.OUTPUT@VERSION (v1, latest, previous, digest prefix) or a path.",
    ),
    new: str = typer.Argument(
        ..., metavar="NEW", help="The version to compare with OLD, in the same forms."
    ),
    key: list[str] = typer.Option(
        [],
        "--key",
        "-k",
        metavar="COLUMN",
        help="Column that identifies a row (repeat for a compound key).",
    ),
    html: Path | None = typer.Option(
        None, "--html", metavar="FILE", help="Also write an HTML report here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the diff as JSON."),
) -> None:
    """Schema changes, rows added/removed/changed, and distribution shift per column."""
    from opsloop.monitor.datadiff import diff_frames, load_dataset  # noqa: PLC0415
    from opsloop.monitor.diff_report import render_diff, write_diff_report  # noqa: PLC0415

    proj = project()
    store = artifacts = None
    if "@" in old or "@" in new:
        # Versions are looked up in the store; plain files need none (and make none).
        proj.require_state("opsloop data diff")
        store, artifacts = proj.store, proj.artifacts
    with console.status("reading both versions …"):
        base = proj.dir
        old_label, old_frame = load_dataset(old, store=store, artifacts=artifacts, base_dir=base)
        new_label, new_frame = load_dataset(new, store=store, artifacts=artifacts, base_dir=base)
    with console.status("comparing …"):
        result = diff_frames(
            old_frame, new_frame, key=key, old_label=old_label, new_label=new_label
        )
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        for table in render_diff(result):
            console.print(table)
        if result.identical:
            console.print("the two versions hold the same data")
    if html is not None:
        with console.status("drawing the report …"):
            written = write_diff_report(result, html)
        if not as_json:
            console.print(f"report written to {escape(str(written))}", soft_wrap=True)


@app.command("versions")
def versions(
    name: str = typer.Argument(
        ..., metavar="NAME", help="PIPELINE.STEP.OUTPUT, e.g. lifecycle.ingest.data."
    ),
) -> None:
    """List the recorded versions of a step output, oldest first."""
    from opsloop.monitor.datadiff import dataset_versions  # noqa: PLC0415

    proj = project()
    proj.require_state(f"opsloop data versions {name}")
    found = dataset_versions(proj.store, name)
    if not found:
        console.print(f"no recorded versions of {escape(name)}")
        return
    table = Table(title=name, title_justify="left")
    for column in ("version", "digest", "first run", "created"):
        table.add_column(column)
    for v in found:
        table.add_row(f"v{v.version}", v.digest[:19], v.run_id[:12], ago(v.created_at))
    console.print(table)
