"""The ``opsloop`` command.

Commands are thin: parse, call one function of a concern package, render. An
``OpsloopError`` is printed as one line plus its hint, exit status 1; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from opsloop import __version__
from opsloop.cli import aiops, gitops, incidents, models, runs
from opsloop.cli._common import State, err_console
from opsloop.errors import OpsloopError

app = typer.Typer(
    name="opsloop",
    help="The whole life of a machine-learning model as one closed loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    project_dir: Path | None = typer.Option(
        None, "--project", "-C", help="Project folder (default: found from the working dir)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    State.debug = debug
    State.project_dir = project_dir


def _register_commands() -> None:
    # Imported here so that a command module's heavy imports load only with the command.
    from opsloop.cli import init, monitor, quickstart, run, serve

    app.command("quickstart")(quickstart.quickstart)
    app.command("init")(init.init)
    app.command("run")(run.run)
    app.add_typer(runs.app, name="runs")
    app.add_typer(models.app, name="models")
    app.command("serve")(serve.serve_command)
    app.add_typer(gitops.deploy_app, name="deploy")
    app.command("sync")(gitops.sync)
    app.command("status")(gitops.status)
    app.command("rollback")(gitops.rollback)
    app.command("up")(gitops.up)
    app.add_typer(monitor.app, name="monitor")
    app.add_typer(incidents.app, name="incidents")
    app.add_typer(aiops.app, name="aiops")


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``opsloop`` console script."""
    try:
        app(args=argv, standalone_mode=True)
    except OpsloopError as exc:
        if State.debug:
            err_console.print_exception(show_locals=False)
        err_console.print(f"[bold red]error:[/bold red] {exc}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"[dim]hint:[/dim] {exc.hint}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
