"""``opsloop init NAME``: scaffold a project folder."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import typer

from opsloop import __version__
from opsloop.cli._common import console
from opsloop.errors import AlreadyExistsError, ConfigError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
#: CI systems ``opsloop init --ci`` writes a workflow for: (template, file in the project).
CI_WORKFLOWS = {
    "github": ("github-ci.yml.tmpl", ".github/workflows/opsloop.yml"),
    "gitlab": ("gitlab-ci.yml.tmpl", ".gitlab-ci.yml"),
}


def _ci_workflow(kind: str) -> tuple[str, str]:
    if kind not in CI_WORKFLOWS:
        raise ConfigError(f"--ci: unknown CI system {kind!r}; use {' or '.join(CI_WORKFLOWS)}")
    return CI_WORKFLOWS[kind]


def write_ci_workflow(kind: str, directory: Path) -> Path:
    """Write the workflow that runs ``opsloop ci`` (opsloop pinned to this version).

    Raises:
        ConfigError: ``kind`` is not a known CI system.
        AlreadyExistsError: The workflow file exists already.
    """
    template, rel = _ci_workflow(kind)
    path = directory / rel
    if path.exists():
        raise AlreadyExistsError(f"{path} already exists; remove it to write it again")
    text = (resources.files("opsloop.cli") / "templates" / template).read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("@VERSION@", __version__))
    return path


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
    ci: str | None = typer.Option(
        None,
        "--ci",
        metavar="github|gitlab",
        help="Also write a CI workflow that runs 'opsloop ci' (in an existing project: only it).",
    ),
) -> None:
    """Create a project folder with an opsloop.yaml and an example pipeline."""
    target = directory or Path(name)
    if ci is not None and (target / "opsloop.yaml").is_file():
        console.print(f"created {write_ci_workflow(ci, target)}")
        return
    if ci is not None:
        _ci_workflow(ci)  # an unknown CI system is refused before anything is written
    written = scaffold(name, target)
    if ci is not None:
        written.append(write_ci_workflow(ci, target))
    for p in written:
        console.print(f"created {p}")
    from opsloop.secops.keys import KeyRing  # noqa: PLC0415

    key = KeyRing(name).signing_key()  # kept outside the project; see 'opsloop keys'
    console.print(f"signing key {key.public.short_id}: {key.private_key_path}")
    console.print(f"\nnext: cd {target} && opsloop run train")
