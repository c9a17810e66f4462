"""The fused detector: the larger of the ensemble's and ARTime's scores, hints passed on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from opsloop.aiops.detectors import ARTimeDetector, EnsembleDetector, FusedDetector


def _series() -> tuple[list[float], list[datetime]]:
    rng = np.random.default_rng(8)
    n = 3000
    values = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    values[2200] += 60.0
    values[2600:] += 25.0
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [float(v) for v in values], [start + timedelta(minutes=5 * i) for i in range(n)]


def test_each_point_scores_the_larger_of_the_two_parts() -> None:
    values, stamps = _series()
    fused = FusedDetector().score_many(values, stamps)
    ensemble = EnsembleDetector().score_many(values, stamps)
    artime = ARTimeDetector(warmup_points=750).score_many(values, stamps)
    np.testing.assert_array_equal(fused, np.maximum(ensemble, artime))
    # Each part adds points the other scores lower.
    assert np.any(artime > ensemble) and np.any(ensemble > artime)


def test_hints_reach_artime() -> None:
    values, stamps = _series()
    fused = FusedDetector()
    artime = ARTimeDetector(warmup_points=750)
    for d in (fused, artime):
        d.hint(value_range=(min(values), max(values)), probation=450)
    expected = np.maximum(EnsembleDetector().score_many(values, stamps), artime.score_many(values))
    np.testing.assert_array_equal(fused.score_many(values, stamps), expected)
    assert artime._step_len == 450 // 104
