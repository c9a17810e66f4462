"""``opsloop quickstart``: make a project from the bundled churn example and run it."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from opsloop.errors import ConfigError

EXAMPLE = "churn"


def example_dir(name: str = EXAMPLE) -> Path:
    """The bundled example ``name``: inside the installed package, or in a source checkout."""
    packaged = resources.files("opsloop") / "examples" / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "examples" / name
    if checkout.is_dir():
        return checkout
    raise ConfigError(f"the example '{name}' is not bundled with this installation of opsloop")


def prepare_project(directory: Path, example: str = EXAMPLE) -> tuple[Path, bool]:
    """Use ``directory`` if it is a project, else copy the example into it.

    Returns the folder and whether it was created from the example.
    """
    if (directory / "opsloop.yaml").is_file():
        return directory.resolve(), False
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(
            f"{directory} is not empty and holds no opsloop.yaml",
            hint="give an empty or new folder, or a project folder",
        )
    src = example_dir(example)
    shutil.copytree(
        src,
        directory,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".opsloop", "__pycache__", "*.pyc"),
    )
    return directory.resolve(), True


def cli_command(cwd: Path | None = None) -> str:
    """How to call the running ``opsloop`` from ``cwd`` (default: the working directory).

    ``opsloop`` when that name on PATH is this very program; else the path of the running
    executable, relative to ``cwd`` when that is short (``.venv/bin/opsloop`` right after
    ``python3 -m venv .venv && .venv/bin/pip install .``, whose environment is not active),
    else absolute; ``python -m opsloop`` when it was started that way.
    """
    base = (cwd or Path.cwd()).absolute()
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name in ("opsloop", "opsloop.exe"):
        exe = argv0 if argv0.is_absolute() else Path.cwd() / argv0
        found = shutil.which("opsloop")
        if found is not None and _same_file(Path(found), exe):
            return "opsloop"
        return _shortest(exe, base)
    return f"{_shortest(Path(sys.executable), base)} -m opsloop"


def activate_hint() -> str | None:
    """``source .venv/bin/activate`` when opsloop runs from a virtual environment that is not
    active (its ``bin`` folder is not on PATH), else None."""
    if sys.prefix == sys.base_prefix:
        return None
    bin_dir = Path(sys.executable).parent
    activate = bin_dir / "activate"
    on_path = any(
        _same_file(Path(p), bin_dir) for p in os.environ.get("PATH", "").split(os.pathsep) if p
    )
    if on_path or not activate.is_file():
        return None
    return f"source {_shortest(activate, Path.cwd().absolute())}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _shortest(path: Path, base: Path) -> str:
    absolute = path.absolute()
    try:
        relative = Path(os.path.relpath(absolute, base))
    except ValueError:  # another drive
        return str(absolute)
    # A relative path with a separator runs as a command in every shell (no "./" needed); it
    # is used when shorter, and when it climbs at most two levels (beyond reads poorly).
    ups = sum(1 for part in relative.parts if part == os.pardir)
    if ups > 2 or len(relative.parts) < 2 or len(str(relative)) >= len(str(absolute)):
        return str(absolute)
    return str(relative)
