"""``opsloop run [PIPELINE] [-p key=value …]``."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from opsloop.cli._common import console, duration, project, status
from opsloop.errors import ConfigError, PipelineError


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; the pipeline coerces the strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid parameter {pair!r}: use -p key=value")
        params[key.strip()] = value
    return params


def run(
    pipeline: str | None = typer.Argument(
        None, help="Pipeline name from opsloop.yaml, or module:function. Default: the lifecycle."
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="Pipeline parameter key=value."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step, reuse nothing."),
    executor: str = typer.Option("local", help="Executor: local (processes) or inline."),
    workers: int | None = typer.Option(None, help="Steps run at once (default: CPU count)."),
) -> None:
    """Run a pipeline; without a name, run the lifecycle declared in opsloop.yaml."""
    proj = project()
    params = parse_params(param)
    if pipeline is None:
        if proj.spec is not None and proj.spec.has_lifecycle:
            from opsloop.lifecycle import run_lifecycle
            from opsloop.lifecycle.summary import print_summary

            outcome = run_lifecycle(
                proj, no_cache=no_cache, executor=executor, max_workers=workers, overrides=params
            )
            print_summary(outcome, console)
            if not outcome.succeeded:
                raise typer.Exit(1)
            return
        declared = ", ".join(sorted(proj.spec.pipelines)) if proj.spec else ""
        raise PipelineError(
            "no pipeline named and opsloop.yaml declares no lifecycle (problem + data)",
            hint=f"run one of: {declared}" if declared else "see 'opsloop init'",
        )

    from opsloop.pipeline import run_pipeline
    from opsloop.pipeline.loader import load_pipeline

    pipe = load_pipeline(pipeline, project_dir=proj.dir, spec=proj.spec)
    result = run_pipeline(
        pipe, params, no_cache=no_cache, executor=executor, max_workers=workers, progress=True
    )
    table = Table(title=f"pipeline {pipe.name} · run {result.run_id[:12]}", title_justify="left")
    for col in ("step", "status", "duration", "outputs"):
        table.add_column(col)
    for info in proj.store.steps.list(result.run_id):
        took = (
            (info.ended_at - info.started_at).total_seconds()
            if info.ended_at and info.started_at
            else None
        )
        table.add_row(
            info.name,
            status(info.status),
            duration(took),
            ", ".join(f"{k}={str(v)[7:19]}" for k, v in info.outputs.items()),
        )
    console.print(table)
    if not result.succeeded:
        for info in proj.store.steps.list(result.run_id):
            if info.status == "failed":
                console.print(f"[red]step '{info.name}' failed:[/red] {info.error}")
        console.print(f"details: opsloop runs show {result.run_id[:12]}")
        raise typer.Exit(1)
    console.print(f"[green]pipeline {pipe.name} finished[/green] · run {result.run_id[:12]}")
