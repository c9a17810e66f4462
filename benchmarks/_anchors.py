"""Private virtual environments for the anchor tools the benchmarks compare against.

Anchors (MLflow, Evidently, MLServer …) are not opsloop dependencies: each gets its own venv
under ``.bench/<name>`` at the repository root, created on first use, so that a fresh clone can
run every benchmark and the anchor's pins never touch opsloop's environment.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"


def anchor_python(name: str, requirements: list[str]) -> Path:
    """The interpreter of the anchor venv ``name``, created with ``requirements`` if missing."""
    env = BENCH_DIR / name
    python = env / "bin" / "python"
    marker = env / ".installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"[setup] creating {env.relative_to(ROOT)} with {' '.join(requirements)}", flush=True)
    if not python.exists():
        venv.create(env, with_pip=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        check=True,
        stdout=sys.stderr,
    )
    marker.write_text(wanted)
    return python
