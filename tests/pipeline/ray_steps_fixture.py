"""Steps the Ray executor tests run (at module level, so that Ray workers import them)."""

from __future__ import annotations

import os
import time

from opsloop.pipeline import step


@step
def die() -> int:
    os._exit(3)


@step(num_cpus=0.5, memory="64MiB")
def resources() -> dict[str, float]:
    import ray  # noqa: PLC0415 - only inside a Ray worker

    assigned = ray.get_runtime_context().get_assigned_resources()
    return {k: v for k, v in assigned.items() if k in ("CPU", "memory")}


@step
def nap(n: int) -> int:
    """Holds its CPU for two seconds: tasks submitted together cannot all run on one node
    of one CPU, whatever the scheduler's order."""
    time.sleep(2)
    return n
