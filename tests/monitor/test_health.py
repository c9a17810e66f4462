"""Service health of a window: traffic and latency percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.monitor.health import service_health


def _requests(latency: list[float], rows: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"latency_ms": latency, "rows": rows})


def test_rate_rows_and_percentiles() -> None:
    rng = np.random.default_rng(0)
    latency = rng.lognormal(3, 0.5, 500)
    got = service_health(_requests(latency.tolist(), [2] * 500), seconds=60.0)
    assert got["requests"] == 500
    assert got["request_rate"] == pytest.approx(500 / 60)
    assert got["rows"] == 1000
    for name, q in (("latency_p50", 50), ("latency_p95", 95), ("latency_p99", 99)):
        assert got[name] == pytest.approx(float(np.percentile(latency, q)))
    assert got["latency_p50"] < got["latency_p95"] < got["latency_p99"]


def test_a_slow_tail_moves_p99_not_p50() -> None:
    fast = [10.0] * 990
    got = service_health(_requests([*fast, *([900.0] * 10)], [1] * 1000), seconds=10)
    assert got["latency_p50"] == 10.0
    assert got["latency_p99"] > 10.0


def test_empty_window_reports_zero_traffic_and_no_latency() -> None:
    got = service_health(_requests([], []), seconds=900)
    assert got == {"requests": 0.0, "request_rate": 0.0, "rows": 0.0}


def test_non_finite_latencies_are_ignored() -> None:
    got = service_health(_requests([5.0, float("nan"), 7.0], [1, 1, 1]), seconds=0)
    assert got["request_rate"] == 0.0
    assert got["latency_p50"] == 6.0
