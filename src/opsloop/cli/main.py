"""The ``opsloop`` command.

Commands are thin: parse, call one function of a concern package, render. An
``OpsloopError`` is printed as one line plus its hint, exit status 1; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from opsloop import __version__
from opsloop.cli import (
    access,
    aiops,
    audit,
    bom,
    ci,
    costs,
    data,
    gitops,
    incidents,
    init,
    keys,
    loop,
    models,
    monitor,
    predict,
    quickstart,
    run,
    runs,
    scan,
    schedules,
    serve,
    server,
)
from opsloop.cli._common import State, err_console
from opsloop.errors import OpsloopError
from opsloop.redact import redact

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
    # Every command module is imported with the CLI, so none may import pandas, the store or
    # the server at its top: those imports sit inside the command that needs them (tests/cli
    # checks that 'import opsloop.cli.main' loads none of them).
    app.command("quickstart")(quickstart.quickstart)
    app.command("init")(init.init)
    app.command("run")(run.run)
    app.command("predict")(predict.predict)
    app.add_typer(runs.app, name="runs")
    app.add_typer(data.app, name="data")
    app.add_typer(models.app, name="models")
    models.app.command("export")(keys.export_model)
    app.add_typer(keys.app, name="keys")
    app.command("scan")(scan.scan)
    app.command("serve", epilog=serve.EXAMPLES)(serve.serve_command)
    app.add_typer(gitops.deploy_app, name="deploy")
    app.command("sync")(gitops.sync)
    app.command("status")(gitops.status)
    app.command("rollback")(gitops.rollback)
    app.command("up")(loop.up)
    app.command("down")(loop.down)
    app.add_typer(monitor.app, name="monitor")
    app.add_typer(incidents.app, name="incidents")
    app.add_typer(schedules.app, name="schedules")
    app.add_typer(aiops.app, name="aiops")
    app.command("bom", epilog=bom.EXAMPLES)(bom.bom)
    app.command("ci")(ci.ci)
    app.add_typer(access.users_app, name="users")
    app.add_typer(access.tokens_app, name="tokens")
    app.command("login")(access.login)
    app.command("logout")(access.logout)
    app.add_typer(audit.app, name="audit")
    app.command("server", epilog=server.EXAMPLES)(server.server_command)
    app.add_typer(costs.costs_app, name="costs")
    app.add_typer(costs.finops_app, name="finops")


_register_commands()

# What a value of each type is called in help pages, as click calls them.
_TYPE_WORDS = {
    "int": "INTEGER",
    "integer": "INTEGER",
    "float": "NUMBER",
    "str": "TEXT",
    "text": "TEXT",
    "path": "PATH",
    "file": "FILE",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
    "datetime": "DATETIME",
    "uuid": "UUID",
}
_CHOICES = re.compile(r"[\w-]+(\|[\w-]+)+")


def _type_word(param: Any, ctx: Any) -> str:
    """The word for what ``param`` takes: ``INTEGER``, ``PATH``, ``a|b`` … (``VALUE`` for
    anything without one, never a Python type)."""
    display = getattr(param, "display_type", None)
    if callable(display):
        shown = str(display(ctx)).strip("<>")
    else:
        shown = str(getattr(getattr(param, "type", None), "name", "") or "")
    shown = shown.removesuffix(" range")
    if shown.startswith("list[") and shown.endswith("]"):
        shown = shown[len("list[") : -1]
    word = _TYPE_WORDS.get(shown.lower())
    if word is not None:
        return word
    return shown if _CHOICES.fullmatch(shown) else "VALUE"


def _reflowed(text: str) -> str:
    """Docstring paragraphs as one line each (typer keeps a docstring's line breaks, which
    then break lines mid-sentence); a paragraph with indented lines keeps its layout."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if any(line[:1].isspace() for line in p.splitlines()) else " ".join(p.split("\n"))
        for p in paragraphs
    )


def _readable_help(command: Any, ctx: Any = None) -> Any:
    """Make every help page under ``command`` show values as words.

    typer prints each parameter's Python type as its placeholder (``--debug <bool>``,
    ``--loader <collections.abc.Callable[...]>``): a flag gets no placeholder, any other
    option without a ``metavar`` gets a word (``INTEGER``, ``PATH``), and so does an
    argument (typer prints its type beside its name whatever its metavar).
    """
    ctx = ctx if ctx is not None else command.context_class(command)
    if command.help:
        command.help = _reflowed(command.help)
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if param.param_type_name == "option":
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
            elif param.metavar is None:
                param.metavar = _type_word(param, ctx)
        elif param.param_type_name == "argument" and hasattr(param, "display_type_rich"):
            word = _type_word(param, ctx)
            # An instance attribute: only this argument's type column changes.
            param.display_type_rich = lambda ctx, word=word: word
    for sub in getattr(command, "commands", {}).values():
        _readable_help(sub, command.context_class(sub, parent=ctx))
    return command


def cli() -> Any:
    """The ``opsloop`` click command, with readable help pages."""
    return _readable_help(typer.main.get_command(app))


class _LastResort(logging.Handler):
    """Python's last-resort handler (WARNING and up, to the current stderr, for a record no
    handler took), with URL secrets masked."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(redact(self.format(record)) + "\n")
        except Exception:
            self.handleError(record)


def _print_traceback(exc: BaseException) -> None:
    # Plain text, not rich's renderer: every line must pass through redact(), because a
    # driver's or a library's message may quote a URL with its password.
    sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``opsloop`` console script."""
    # Replaced rather than adding a handler: records go exactly where they went before.
    logging.lastResort = _LastResort()
    try:
        cli()(args=argv, standalone_mode=True, prog_name="opsloop")
    except OpsloopError as exc:
        if State.debug:
            _print_traceback(exc)
        err_console.print(f"[bold red]error:[/bold red] {escape(redact(str(exc)))}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"[dim]hint:[/dim] {escape(redact(exc.hint))}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # A bug: its traceback is what to report, with secrets masked like every other line.
        _print_traceback(exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
