"""``opsloop run [PIPELINE] [-p key=value …]``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from opsloop.cli._common import (
    console,
    deployments_of,
    duration,
    model_aliases,
    project,
    report_alias_moves,
    status,
)
from opsloop.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.context import Project
    from opsloop.lifecycle import LifecycleOutcome
    from opsloop.pipeline.executors import Executor

RECENT_ROWS = 2_000
"""Newest labelled rows read per deployment to compare the candidate and the champion on."""
RECENT_DAYS = 30
"""How far back those labels may have arrived."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; the pipeline coerces the strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid parameter {pair!r}: use -p key=value")
        params[key.strip()] = value
    return params


def recent_traffic(proj: Project, model: str) -> tuple[pd.DataFrame | None, str]:
    """What the deployments of ``model`` (per ``deploy/``) saw lately, with the labels that
    came back: the input columns and the target, newest first. ``(None, "")`` when none."""
    # Lazy imports here and below (noqa: PLC0415) of pandas, opsloop.monitor, opsloop.lifecycle,
    # opsloop.spec, opsloop.pipeline: each loads with the command that needs it, not with every CLI
    # call.
    import pandas as pd  # noqa: PLC0415

    from opsloop.monitor.windows import LABEL, recent_labelled_rows  # noqa: PLC0415

    spec = proj.spec
    if spec is None or spec.problem is None:
        return None, ""
    until = datetime.now(UTC)
    frames, names = [], []
    for dep in deployments_of(proj, model):
        rows = recent_labelled_rows(
            proj.store,
            dep.name,
            until=until,
            since=until - timedelta(days=RECENT_DAYS),
            max_rows=RECENT_ROWS,
            artifacts=proj.artifacts,
        )
        if not rows.empty:
            frames.append(rows)
            names.append(dep.name)
    if not frames:
        return None, ""
    frame = pd.concat(frames, ignore_index=True).rename(columns={LABEL: spec.problem.target})
    return frame, f"the labelled traffic of {', '.join(names)}"


def run_declared_lifecycle(
    proj: Project,
    *,
    no_cache: bool = False,
    executor: str | Executor = "local",
    max_workers: int | None = None,
    overrides: dict[str, Any] | None = None,
    allow_rollback: bool = False,
    cd: str | None = None,
) -> LifecycleOutcome:
    """Run the lifecycle with what production says now, print its summary, and say loudly
    which deployments an alias move changes.

    Args:
        proj: The project.
        no_cache: Run every phase again.
        executor: Pipeline executor name, or an executor (left open).
        max_workers: Phases run at once.
        overrides: Lifecycle parameters (``-p``).
        allow_rollback: Let an alias move back to an older version.
        cd: The project folder as the user reaches it, when the suggested commands must
            change to it first.
    """
    from opsloop.lifecycle import run_lifecycle  # noqa: PLC0415
    from opsloop.lifecycle.quickstart import cli_command  # noqa: PLC0415
    from opsloop.lifecycle.summary import print_summary  # noqa: PLC0415

    spec = proj.spec
    assert spec is not None
    model = spec.registration.model if spec.registration is not None else spec.project
    before = model_aliases(proj, model)
    recent, source = recent_traffic(proj, model)
    outcome = run_lifecycle(
        proj,
        no_cache=no_cache,
        executor=executor,
        max_workers=max_workers,
        overrides=overrides,
        recent=recent,
        recent_source=source or "recent labelled traffic",
        allow_rollback=allow_rollback,
    )
    print_summary(outcome, console, command=cli_command(proj.dir if cd else None), cd=cd)
    report_alias_moves(proj, model, before, model_aliases(proj, model))
    return outcome


def _unknown_pipeline(proj: Project, name: str) -> PipelineError:
    from opsloop.spec.loader import did_you_mean  # noqa: PLC0415

    declared = sorted(proj.spec.pipelines) if proj.spec else []
    has_lifecycle = proj.spec is not None and proj.spec.has_lifecycle
    listing = ", ".join(declared) if declared else "no pipelines"
    lifecycle = "; 'opsloop run' with no name runs its lifecycle" if has_lifecycle else ""
    return PipelineError(
        f"unknown pipeline '{name}' in project '{proj.name}' ({proj.dir}): its opsloop.yaml "
        f"declares {listing}{did_you_mean(name, declared)}{lifecycle}",
        hint=(
            "name one of them, give 'module:function', or run in another project (-C DIR)"
            if declared
            else "declare it under 'pipelines:' (name: module:function), or give "
            "'module:function', or run in another project (-C DIR)"
        ),
    )


def open_executor(
    proj: Project, name: str | None, address: str | None, workers: int | None
) -> Executor:
    """The executor ``--executor``/``--address``/``--workers`` name, else ``executor:`` of
    ``opsloop.yaml``, else the local one."""
    from opsloop.pipeline.executors import get_executor  # noqa: PLC0415
    from opsloop.spec.executor import ExecutorSection  # noqa: PLC0415

    declared = proj.spec.executor if proj.spec is not None else ExecutorSection()
    chosen = name or declared.name
    options = declared.options() if chosen == declared.name else {}
    if address is not None:
        if chosen != "ray":
            raise ConfigError(f"--address is for the ray executor, not '{chosen}'")
        options["address"] = address
    return get_executor(chosen, max_workers=workers or declared.max_workers, **options)


def run(
    pipeline: str | None = typer.Argument(
        None, help="Pipeline name from opsloop.yaml, or module:function. Default: the lifecycle."
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="Pipeline parameter key=value."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step, reuse nothing."),
    executor: str | None = typer.Option(
        None,
        help="Executor: local (processes), inline or ray. Default: executor in opsloop.yaml, "
        "else local.",
    ),
    address: str | None = typer.Option(
        None, help="Ray cluster for --executor ray: auto or ray://host:10001."
    ),
    workers: int | None = typer.Option(None, help="Steps run at once (default: CPU count)."),
    allow_rollback: bool = typer.Option(
        False,
        "--allow-rollback",
        help="Let the lifecycle move an alias back to an older version (a rollback).",
    ),
) -> None:
    """Run a pipeline; without a name, run the lifecycle declared in opsloop.yaml.

    The lifecycle compares its candidate with the champion on the held-out test set and on
    the labelled traffic of the deployments that serve the model (deploy/), and says which
    deployments an alias move changes.
    """
    proj = project()
    params = parse_params(param)
    with open_executor(proj, executor, address, workers) as exe:
        _run(proj, pipeline, params, exe, no_cache=no_cache, allow_rollback=allow_rollback)


def _run(
    proj: Project,
    pipeline: str | None,
    params: dict[str, Any],
    exe: Executor,
    *,
    no_cache: bool,
    allow_rollback: bool,
) -> None:
    if pipeline is None:
        if proj.spec is not None and proj.spec.has_lifecycle:
            outcome = run_declared_lifecycle(
                proj,
                no_cache=no_cache,
                executor=exe,
                overrides=params,
                allow_rollback=allow_rollback,
            )
            if not outcome.succeeded:
                raise typer.Exit(1)
            return
        declared = ", ".join(sorted(proj.spec.pipelines)) if proj.spec else ""
        raise PipelineError(
            f"no pipeline named, and {proj.dir / 'opsloop.yaml'} declares no lifecycle "
            "(it needs 'problem' and 'data')",
            hint=f"run one of: {declared}" if declared else "see 'opsloop init'",
        )

    from opsloop.pipeline import run_pipeline  # noqa: PLC0415
    from opsloop.pipeline.loader import load_pipeline  # noqa: PLC0415

    if ":" not in pipeline and pipeline not in (proj.spec.pipelines if proj.spec else {}):
        raise _unknown_pipeline(proj, pipeline)
    pipe = load_pipeline(pipeline, project_dir=proj.dir, spec=proj.spec)
    result = run_pipeline(pipe, params, no_cache=no_cache, executor=exe, progress=True)
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
