"""``opsloop bom``: the CycloneDX ML-BOM of a registered model version."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.markup import escape

from opsloop.cli._common import console, project

EXAMPLES = """Examples:

  opsloop bom models:/churn/3 --out bom.json

  opsloop bom models:/churn@champion --out bom.json --environment running
"""


def bom(
    uri: str = typer.Argument(
        ..., help="A registered version: models:/NAME/VERSION, models:/NAME@ALIAS or /latest."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the BOM to this file (default: print it)."
    ),
    environment: str = typer.Option(
        "recorded",
        "--environment",
        help="recorded|running: the Python packages the model package records (default), "
        "or every package installed where this command runs.",
    ),
) -> None:
    """Write the CycloneDX 1.6 ML-BOM of a model version: the model and its model card, the
    data sets it was trained on, its Python packages, and the hash of every file."""
    # Imported with the command, not the CLI (see cli/main.py): the registry loads the store.
    from opsloop.errors import NotFoundError, SecurityError  # noqa: PLC0415
    from opsloop.registry import resolve_model_uri, verify_model_dir  # noqa: PLC0415
    from opsloop.secops.bom import (  # noqa: PLC0415
        DatasetRecord,
        PythonEnvironment,
        default_datasets,
        ml_bom_json,
    )

    if environment not in ("recorded", "running"):
        raise SecurityError(f"--environment: expected 'recorded' or 'running', got {environment!r}")
    proj = project()
    ref = resolve_model_uri(uri, store=proj.store)
    if isinstance(ref, Path):
        raise SecurityError(
            f"{uri}: a BOM describes a registered model version, not a local folder",
            hint="pass models:/NAME/VERSION or models:/NAME@ALIAS",
        )
    datasets = default_datasets(ref)
    if ref.dataset_digest:
        try:
            recorded = proj.store.datasets.get(ref.dataset_digest)
        except NotFoundError:
            pass
        else:
            datasets = [DatasetRecord.from_info(recorded)]
    package = ref.details.get("package")
    trusted = package.get("extra_trusted_types", []) if isinstance(package, dict) else []
    with tempfile.TemporaryDirectory(prefix="opsloop-bom-") as tmp:
        folder = proj.artifacts.get_dir(ref.artifact_digest, Path(tmp) / "model")
        meta = verify_model_dir(
            folder, trusted_types=list(trusted), expected_digest=ref.artifact_digest
        )
        env = (
            PythonEnvironment.running()
            if environment == "running"
            else PythonEnvironment.recorded(meta.library_versions, meta.python_version)
        )
        text = ml_bom_json(ref, folder, datasets=datasets, environment=env)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(
        f"wrote the ML-BOM of {escape(ref.uri)} to {escape(str(out))} "
        f"(CycloneDX 1.6, {len(env.packages)} {env.source} packages, "
        f"{len(datasets)} data set(s))"
    )
