"""``opsloop quickstart``: make a project from the bundled churn example and run it."""

from __future__ import annotations

import shutil
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
