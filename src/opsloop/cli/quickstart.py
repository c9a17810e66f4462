"""``opsloop quickstart [--dir DIR]``."""

from __future__ import annotations

from pathlib import Path

import typer

from opsloop.cli._common import State, console


def quickstart(
    directory: Path = typer.Option(
        Path("opsloop-quickstart"), "--dir", help="Project folder: created from the example."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every phase again."),
    loop: bool = typer.Option(
        True,
        "--loop/--no-loop",
        help="After training, close the loop: deploy through Git, drift the traffic, detect, "
        "retrain, canary, promote (a few minutes). --no-loop stops after training.",
    ),
) -> None:
    """Create the churn example project (or use DIR), train and register a champion, then
    run the closed loop on it: serve, drift, detect, heal."""
    from opsloop.context import open_project, set_current_project
    from opsloop.lifecycle import run_lifecycle
    from opsloop.lifecycle.quickstart import prepare_project
    from opsloop.lifecycle.summary import print_summary

    folder, created = prepare_project(directory)
    console.print(
        f"{'created' if created else 'using'} project [bold]{folder}[/bold]"
        + (" from the churn example" if created else "")
    )
    State.project_dir = folder
    proj = open_project(folder)
    set_current_project(proj)
    outcome = run_lifecycle(proj, no_cache=no_cache)
    print_summary(outcome, console)
    if not outcome.succeeded:
        raise typer.Exit(1)
    if loop:
        from opsloop.loop.demo import run_loop_demo

        result = run_loop_demo(proj, console)
        if result.promoted_version is None:
            raise typer.Exit(1)
    console.print(f"  cd {folder} && opsloop runs list")
