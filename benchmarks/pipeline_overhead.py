"""Overhead of the pipeline engine when everything is cached.

A re-run of an unchanged pipeline starts no worker: each step costs a cache-key hash, one
store lookup, one artifact existence check and the step-run records. This measures that cost
for a one-step pipeline and a ten-step chain, both fully cached, on a local SQLite store.

    python benchmarks/pipeline_overhead.py [--repeats 20]

``benchmarks/tracking.py`` imports :func:`measure_cached_overheads` and prints its figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsloop.artifacts import open_artifact_store
from opsloop.pipeline import Pipeline, pipeline, run_pipeline, step
from opsloop.store import open_store

CHAIN = 10


@step
def noop(value: int = 0) -> int:
    return value


@step
def increment(value: int) -> int:
    return value + 1


@pipeline(name="bench-one-step")
def one_step() -> None:
    noop(1)


@pipeline(name="bench-ten-steps")
def ten_steps() -> None:
    value = noop(0)
    for _ in range(CHAIN - 1):
        value = increment(value)


def _median_ms(pipe: Pipeline, store: Any, artifacts: Any, repeats: int) -> float:
    first = run_pipeline(pipe, store=store, artifacts=artifacts, progress=False)
    first.raise_for_status()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run_pipeline(pipe, store=store, artifacts=artifacts, progress=False)
        times.append(time.perf_counter() - t0)
        if len(result.cached_steps) != len(result.steps):
            raise RuntimeError(f"{pipe.name}: a re-run was not fully cached")
    return statistics.median(times) * 1000


def measure_cached_overheads(tmp_dir: Path, repeats: int = 20) -> dict[str, float]:
    """Median wall time (ms) of fully cached re-runs, on a fresh store under ``tmp_dir``.

    Returns:
        ``cached no-op step (1-step pipeline)``, ``fully cached 10-step pipeline`` and
        ``per cached step (10-step pipeline)``, in milliseconds.
    """
    tmp_dir = Path(tmp_dir)
    store = open_store(f"sqlite:///{tmp_dir / 'pipeline-bench.db'}")
    artifacts = open_artifact_store(str(tmp_dir / "pipeline-bench-artifacts"))
    try:
        one = _median_ms(one_step, store, artifacts, repeats)
        ten = _median_ms(ten_steps, store, artifacts, repeats)
    finally:
        store.close()
    return {
        "cached no-op step (1-step pipeline)": one,
        f"fully cached {CHAIN}-step pipeline": ten,
        f"per cached step ({CHAIN}-step pipeline)": ten / CHAIN,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure_cached_overheads(Path(tmp), repeats=args.repeats)
    print("pipeline overhead (fully cached re-run, median):")
    for k, v in figures.items():
        print(f"  {k:<40}{v:>10.1f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
