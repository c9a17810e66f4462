"""``opsloop aiops``: anomaly detectors and the NAB benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsloop.errors import OpsloopError

app = typer.Typer(help="AIOps: streaming anomaly detectors and the NAB benchmark.")

_out = Console()
_err = Console(stderr=True)


def _fail(exc: OpsloopError) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        _err.print(f"hint: {exc.hint}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def benchmark(
    *,
    nab: Annotated[
        Path,
        typer.Option(
            "--nab",
            help="NAB-layout folder (data/, labels/combined_windows.json, config/profiles.json).",
        ),
    ],
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            "-d",
            help="Detector to run (repeatable; default: the default detector, fused).",
        ),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", "-p", help="Cost profile to score (repeatable; default: all)."),
    ] = None,
    results: Annotated[
        list[Path] | None,
        typer.Option(
            "--results",
            help="Folder of precomputed results <name>/<category>/<name>_<file>.csv (repeatable; "
            "default: every folder under the NAB folder's results/ and reference_results/).",
        ),
    ] = None,
    others: Annotated[
        bool,
        typer.Option(
            "--others/--no-others",
            help="Score the precomputed results found in the NAB folder beside ours.",
        ),
    ] = True,
    cv: Annotated[
        bool,
        typer.Option(
            "--cv",
            help="Leave-one-category-out: choose settings and threshold on the other "
            "categories, score the held-out one; in-sample scores beside.",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(help="Processes per detector run.")] = 1,
    chart: Annotated[
        Path | None, typer.Option(help="Also write a PNG bar chart of the first profile.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scoreboard as JSON.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run detectors over an NAB folder and print the scoreboard."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop.aiops: each loads with the command that
    # needs it, not with every CLI call.
    from opsloop.aiops.benchmark import find_result_folders, run_nab_benchmark  # noqa: PLC0415
    from opsloop.aiops.benchmark_render import render_scoreboard, write_chart  # noqa: PLC0415
    from opsloop.aiops.detectors import DEFAULT_DETECTOR  # noqa: PLC0415

    folders = list(results) if results else (find_result_folders(nab) if others else [])
    if cv:
        _loco(nab, detector, profile, folders, workers, progress, json_out)
        return
    try:
        board = run_nab_benchmark(
            nab,
            detectors=detector or [DEFAULT_DETECTOR],
            profiles=profile or None,
            results=folders,
            workers=workers,
            progress=progress,
            console=_err,
        )
    except OpsloopError as exc:
        raise _fail(exc) from exc
    _out.print(render_scoreboard(board))
    if chart is not None:
        _out.print(f"chart: {write_chart(board, chart)}")
    if json_out is not None:
        _save_json(json_out, board.to_dict(), "scoreboard")


def _save_json(path: Path, data: dict[str, Any], label: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    _out.print(f"{label}: {path}")


def _loco(
    nab: Path,
    detector: list[str] | None,
    profile: list[str] | None,
    folders: list[Path],
    workers: int,
    progress: bool,
    json_out: Path | None,
) -> None:
    from opsloop.aiops.benchmark_render import render_loco_report  # noqa: PLC0415
    from opsloop.aiops.detectors import DEFAULT_DETECTOR  # noqa: PLC0415
    from opsloop.aiops.loco import cross_validate_loco  # noqa: PLC0415

    try:
        report = cross_validate_loco(
            nab,
            detector or [DEFAULT_DETECTOR],
            profile or None,
            results=folders,
            workers=workers,
            progress=progress,
            console=_err,
        )
    except OpsloopError as exc:
        raise _fail(exc) from exc
    _out.print(render_loco_report(report))
    if json_out is not None:
        _save_json(json_out, report.to_dict(), "report")


@app.command("detectors")
def list_detectors() -> None:
    """List the built-in detectors and their parameters."""
    from opsloop.aiops.detectors import DEFAULT_DETECTOR, DETECTORS  # noqa: PLC0415

    table = Table(title="detectors", title_justify="left")
    table.add_column("name")
    table.add_column("class")
    table.add_column("parameters")
    for name, cls in DETECTORS.items():
        params = ", ".join(f"{k}={v!r}" for k, v in cls().get_params().items())
        label = f"{name} (default)" if name == DEFAULT_DETECTOR else name
        table.add_row(label, cls.__name__, params)
    _out.print(table)
