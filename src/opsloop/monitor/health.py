"""Service health of a window of the prediction log: traffic and latency."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LATENCY_PERCENTILES", "service_health"]

LATENCY_PERCENTILES = {"latency_p50": 50.0, "latency_p95": 95.0, "latency_p99": 99.0}
"""Latency series written per window, by name, with their percentile."""


def service_health(requests: pd.DataFrame, seconds: float) -> dict[str, float]:
    """Traffic and latency of the requests of one window.

    Args:
        requests: One row per request with ``latency_ms`` and ``rows`` columns (the
            ``requests`` of a :class:`~opsloop.monitor.windows.PredictionWindow`).
        seconds: Length of the window.

    Returns:
        ``requests`` (count), ``request_rate`` (requests per second), ``rows`` (predicted
        rows) and, when there were requests, ``latency_p50``, ``latency_p95`` and
        ``latency_p99`` in milliseconds (linear interpolation between order statistics).
    """
    n = len(requests)
    out = {
        "requests": float(n),
        "request_rate": n / seconds if seconds > 0 else 0.0,
        "rows": float(requests["rows"].sum()) if n else 0.0,
    }
    if n:
        latency = requests["latency_ms"].to_numpy(dtype=np.float64)
        finite = latency[np.isfinite(latency)]
        if finite.size:
            values = np.percentile(finite, list(LATENCY_PERCENTILES.values()))
            out.update(
                {name: float(v) for name, v in zip(LATENCY_PERCENTILES, values, strict=True)}
            )
    return out
