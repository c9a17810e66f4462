"""The FinOps Foundation's focus-validator, in a virtual environment of its own."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest
from filelock import FileLock

FOCUS_VALIDATOR_VERSION = "1.0.0"
# focus-validator 1.0.0 pins pandera 0.17 and numpy<2; multimethod 1.11 broke that pandera;
# pyarrow lets it read Parquet (the releases for numpy 1).
_REQUIREMENTS = (f"focus-validator=={FOCUS_VALIDATOR_VERSION}", "multimethod<1.11", "pyarrow<19")
FOCUS_VALIDATOR_ENV = "OPSLOOP_FOCUS_VALIDATOR_VENV"


def install_focus_validator(env_dir: Path) -> Path:
    """Make ``env_dir`` a virtual environment with focus-validator (once: a marker file
    records what was installed); return its Python."""
    python = env_dir / "bin" / "python"
    marker = env_dir / ".opsloop-installed"
    wanted = " ".join(_REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted and python.exists():
        return python
    venv.create(env_dir, with_pip=True, clear=True)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *_REQUIREMENTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"could not install {wanted} into {env_dir}: {tail}")
    marker.write_text(wanted)
    return python


@pytest.fixture(scope="session")
def focus_validator() -> Path:
    """The Python of a virtual environment with focus-validator: ``OPSLOOP_FOCUS_VALIDATOR_VENV``
    when set, else one under ``.pytest_cache/`` made on first use (its pins clash with
    opsloop's, so it is never installed next to it)."""
    if os.environ.get(FOCUS_VALIDATOR_ENV):
        return Path(os.environ[FOCUS_VALIDATOR_ENV]) / "bin" / "python"
    root = Path(__file__).resolve().parent.parent.parent
    env_dir = root / ".pytest_cache" / f"focus-validator-{FOCUS_VALIDATOR_VERSION}"
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers share the one environment: the first makes it, the others wait.
    with FileLock(f"{env_dir}.lock"):
        return install_focus_validator(env_dir)
