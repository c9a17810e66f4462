"""``opsloop init NAME``: scaffold a project folder."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import typer

from opsloop.cli._common import console
from opsloop.errors import AlreadyExistsError, ConfigError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write a new project into ``directory`` (which must not hold an opsloop.yaml yet)."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid project name {name!r}: start with a letter; letters, digits, '-', '_'"
        )
    spec_file = directory / "opsloop.yaml"
    if spec_file.exists():
        raise AlreadyExistsError(f"{spec_file} already exists: {directory} is a project already")
    templates = resources.files("opsloop.cli") / "templates"
    files = {
        "opsloop.yaml": (templates / "opsloop.yaml.tmpl").read_text().format(name=name),
        "pipelines.py": (templates / "pipelines.py.tmpl").read_text(),
        ".gitignore": ".opsloop/\n__pycache__/\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, text in files.items():
        path = directory / rel
        if path.exists():
            continue
        path.write_text(text)
        written.append(path)
    return written


def init(
    name: str = typer.Argument(..., help="Project name; also the folder created."),
    directory: Path | None = typer.Option(None, "--dir", help="Folder (default: ./NAME)."),
) -> None:
    """Create a project folder with an opsloop.yaml and an example pipeline."""
    target = directory or Path(name)
    written = scaffold(name, target)
    for p in written:
        console.print(f"created {p}")
    from opsloop.secops.keys import KeyRing  # noqa: PLC0415

    key = KeyRing(name).signing_key()  # kept outside the project; see 'opsloop keys'
    console.print(f"signing key {key.public.short_id}: {key.private_key_path}")
    console.print(f"\nnext: cd {target} && opsloop run train")
