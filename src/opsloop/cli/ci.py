"""``opsloop ci [--out DIR] [--no-train]``: the checks a pull request must pass."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import State, console, status


def ci(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder of the reports (default: .opsloop/ci/ in the project)."
    ),
    no_train: bool = typer.Option(
        False, "--no-train", help="Skip the training run; check the champion instead."
    ),
) -> None:
    """Run the pull-request checks: spec, data contract, secrets, a CI training run, gates,
    model scan, ML-BOM, IaC (checkov) and what a sync would change.

    Writes junit.xml, results.sarif, summary.md and bom.json; exits 1 when a check failed.
    """
    # Imported with the command, not the CLI (cli/main.py): the checks load the whole stack.
    from opsloop.errors import ConfigError  # noqa: PLC0415
    from opsloop.loop.ci import run_ci  # noqa: PLC0415
    from opsloop.settings import env_settings  # noqa: PLC0415
    from opsloop.spec import find_project_dir  # noqa: PLC0415

    # The spec is the first check: the folder is found here, the spec is read by run_ci.
    folder = State.project_dir or env_settings().project_dir or find_project_dir(Path.cwd())
    if folder is None:
        raise ConfigError(f"no opsloop.yaml in {Path.cwd()} or above: not an opsloop project")
    report = run_ci(folder, out_dir=out, train=not no_train)
    table = Table(title="opsloop ci", title_justify="left")
    for col in ("check", "status", "time", "details"):
        table.add_column(col, overflow="fold")
    for c in report.checks:
        table.add_row(c.name, status(c.status), f"{c.duration_s:.1f} s", escape(c.message))
    console.print(table)
    for kind, path in report.files.items():
        console.print(f"{kind}: {escape(str(path))}")
    if not report.ok:
        raise typer.Exit(1)
