"""``opsloop scan PATH|URI [--sarif FILE]``: scan a model folder, file or registered version."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.markup import escape
from rich.table import Table

from opsloop.cli._common import console, plural, project

if TYPE_CHECKING:
    from opsloop.secops import ScanReport, Severity

_STYLES = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def scan(
    target: str = typer.Argument(
        ..., help="A folder, a file, or a model URI (models:/NAME/VERSION, models:/NAME@ALIAS)."
    ),
    sarif: Path | None = typer.Option(None, "--sarif", help="Also write a SARIF 2.1.0 log here."),
    fail_at: str = typer.Option(
        "high", "--fail-at", help="Exit 1 on a finding of this severity or worse."
    ),
) -> None:
    """Scan every file of a model for what would run code when it is loaded.

    Exits 1 when a finding is at or above --fail-at (high by default).
    """
    # Imported with the command, not the CLI (cli/main.py): the registry loads the store.
    from opsloop.registry.packaging import declared_trusted_types  # noqa: PLC0415
    from opsloop.registry.uri import parse_model_uri, resolve_model_uri  # noqa: PLC0415
    from opsloop.secops import SarifLog, scan_path, scan_report_run  # noqa: PLC0415

    threshold = cast("Severity", fail_at)  # checked by scan_path
    ref = parse_model_uri(target)
    if isinstance(ref, Path):
        trusted = sorted(declared_trusted_types(None))
        report = scan_path(ref, trusted_types=trusted, fail_at=threshold)
        root = None
    else:
        proj = project()
        version = resolve_model_uri(target, store=proj.store)
        assert not isinstance(version, Path)
        package = version.details.get("package")
        recorded = package.get("extra_trusted_types", []) if isinstance(package, dict) else []
        with tempfile.TemporaryDirectory(prefix="opsloop-scan-") as tmp:
            folder = Path(tmp) / "model"
            proj.artifacts.get_dir(version.artifact_digest, folder)
            report = scan_path(folder, trusted_types=recorded, fail_at=threshold)
        root = f"{ref}/"
    _render(target, report)
    if sarif is not None:
        written = SarifLog([scan_report_run(report, root=root)]).write(sarif)
        console.print(f"SARIF written to {escape(str(written))}")
    if report.status == "failed":
        raise typer.Exit(1)


def _render(target: str, report: ScanReport) -> None:
    if report.findings:
        table = Table(title=f"findings in {escape(target)}", title_justify="left")
        for col in ("severity", "rule", "file", "offending", "message"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            where = f.file if f.member is None else f"{f.file}:{f.member}"
            style = _STYLES[f.severity]
            table.add_row(
                f"[{style}]{f.severity}[/{style}]",
                f.rule_id,
                escape(where),
                escape(f.offending or "-"),
                escape(f.message),
            )
        console.print(table)
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts().items() if n)
    style = "green" if report.status == "passed" else "bold red"
    console.print(
        f"[{style}]{report.status}[/{style}]: {plural(len(report.files), 'file')} scanned, "
        f"{counts or 'no findings'} ({report.scanner} {report.version}, fails at "
        f"{report.fail_at})"
    )
