"""Steps of the cache-key tests that call library code or read constants (never rewritten)."""

from __future__ import annotations

import numpy as np

from opsloop.pipeline import step

KINDS = frozenset({"alpha", "beta", "gamma", "delta"})
LIMITS = (1, 2.5, "x", None, (True, b"z"))


@step
def with_numpy(values: list[float]) -> float:
    data = np.asarray(values)
    return float(np.percentile(data, 90) + np.linalg.norm(data) + np.median(data))


@step
def with_constants(kind: str) -> bool:
    return kind in KINDS and LIMITS[0] == 1


CALLS = 0


@step
def counted() -> int:
    global CALLS
    CALLS += 1
    return CALLS
