"""``opsloop quickstart [--dir DIR]``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from opsloop.cli._common import State, console
from opsloop.cli.run import run_declared_lifecycle


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
    # Lazy imports here and below (noqa: PLC0415) of opsloop.context, opsloop.lifecycle,
    # opsloop.loop: each loads with the command that needs it, not with every CLI call.
    from opsloop.context import open_project, set_current_project  # noqa: PLC0415
    from opsloop.lifecycle.quickstart import activate_hint, cli_command, prepare_project  # noqa: PLC0415

    started = time.time()
    folder, created = prepare_project(directory)
    console.print(
        f"{'created' if created else 'using'} project [bold]{folder}[/bold]"
        + (" from the churn example" if created else ""),
        soft_wrap=True,
    )
    State.project_dir = folder
    proj = open_project(folder)
    set_current_project(proj)
    outcome = run_declared_lifecycle(proj, no_cache=no_cache, cd=str(directory))
    if not outcome.succeeded:
        raise typer.Exit(1)
    if loop:
        from opsloop.loop.demo import run_loop_demo  # noqa: PLC0415

        result = run_loop_demo(proj, console)
        if result.promoted_version is None:
            raise typer.Exit(1)
    reports = sorted(
        (p for p in (proj.state_dir / "reports").glob("*/*.html") if p.stat().st_mtime >= started),
        key=lambda p: p.stat().st_mtime,
    )
    if reports:
        console.print("reports written:")
        for path in reports:
            console.print(f"  {path}", soft_wrap=True)
    console.print("next, in the project:")
    console.print(f"  cd {directory} && {cli_command(folder)} runs list", soft_wrap=True)
    hint = activate_hint()
    if hint is not None:
        console.print(f"  (or '{hint}' first, then plain 'opsloop')", soft_wrap=True)
    console.print("the dashboard, the whole loop on one screen:")
    console.print(
        f"  cd {directory} && {cli_command(folder)} server   # then open http://127.0.0.1:8700/",
        soft_wrap=True,
    )
