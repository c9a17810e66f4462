"""``opsloop predict URI --input GLOB --output DIR``: batch scoring."""

from __future__ import annotations

from pathlib import Path

import typer

from opsloop.cli._common import console, project


def predict(
    uri: str = typer.Argument(
        ..., help="Model version: models:/NAME/VERSION or models:/NAME@ALIAS."
    ),
    input: str = typer.Option(..., "--input", "-i", help="Parquet files: a glob or a folder."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the Parquet parts."),
    executor: str = typer.Option("local", help="local (processes) or ray."),
    workers: int = typer.Option(1, help="Parts scored at once."),
    address: str | None = typer.Option(None, help="Ray cluster for --executor ray."),
    batch_rows: int = typer.Option(65_536, help="Rows read and scored at once per worker."),
    keep: list[str] = typer.Option([], "--keep", help="Input column to copy to the output."),
) -> None:
    """Score Parquet files with a registered model, in bounded memory, into Parquet parts."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from opsloop.registry import load_model  # noqa: PLC0415
    from opsloop.serve.batch import predict_batch  # noqa: PLC0415

    proj = project()
    model = load_model(uri, store=proj.store, artifacts=proj.artifacts)
    with Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("score", total=None)
        result = predict_batch(
            model,
            input,
            output,
            store=proj.store,
            executor=executor,
            workers=workers,
            batch_rows=batch_rows,
            keep=keep,
            address=address,
            project=proj.name,
            on_part=lambda rows: bar.advance(task, rows),
        )
    console.print(
        f"[green]scored {result.rows:,} rows[/green] with {result.model_uri} into "
        f"{len(result.parts)} part(s) in {output} · {result.rows_per_s:,.0f} rows/s · "
        f"run {result.run_id[:12]}"
    )
