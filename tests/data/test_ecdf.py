"""The KS / Wasserstein kernel against scipy's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from opsloop.data._ecdf import SortedWindow, ks_wasserstein


@pytest.mark.parametrize(
    ("k", "m"), [(1, 1), (1, 9), (9, 1), (7, 13), (200, 3000), (3000, 200), (5000, 200_000)]
)
@pytest.mark.parametrize("ties", [False, True])
def test_matches_scipy(k: int, m: int, ties: bool) -> None:
    rng = np.random.default_rng(k * 1000 + m)
    a = rng.normal(50.0, 2.0, k)
    b = rng.normal(50.3, 2.5, m)
    if ties:
        a, b = np.round(a), np.round(b)
    a.sort()
    b.sort()
    ks, w = ks_wasserstein(a, SortedWindow(b, center=float(np.median(a))))
    assert ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)


def test_weighted_first_sample_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        k, m = rng.integers(1, 40), rng.integers(1, 60)
        a = np.round(rng.normal(size=k), 1)
        weights = rng.integers(1, 5, size=k)
        b = np.sort(np.round(rng.normal(0.2, 1.0, size=m), 1))
        order = np.argsort(a, kind="stable")
        a, weights = a[order], weights[order]
        ks, w = ks_wasserstein(a, SortedWindow(b, 0.0), np.cumsum(weights))
        expected_ks = stats.ks_2samp(np.repeat(a, weights), b).statistic
        assert ks == pytest.approx(expected_ks, abs=1e-12)
        assert w == pytest.approx(stats.wasserstein_distance(a, b, u_weights=weights), abs=1e-12)


def test_identical_samples_are_at_distance_zero() -> None:
    values = np.sort(np.random.default_rng(0).normal(size=1000))
    assert ks_wasserstein(values, SortedWindow(values, 0.0)) == pytest.approx((0.0, 0.0))


def test_large_offsets_stay_accurate() -> None:
    # Prefix sums of values near 1e9 would lose the spread without the centering.
    rng = np.random.default_rng(1)
    a = np.sort(rng.normal(1e9, 1.0, 2000))
    b = np.sort(rng.normal(1e9 + 0.1, 1.0, 100_000))
    _, w = ks_wasserstein(a, SortedWindow(b, center=float(a[1000])))
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-6)


def test_window_moments_match_numpy() -> None:
    values = np.sort(np.random.default_rng(2).lognormal(3.0, 1.0, 10_000))
    window = SortedWindow(values, center=20.0)
    assert window.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert window.std == pytest.approx(np.std(values), rel=1e-9)
    assert window.count_le(np.array([values[10]]))[0] == 11
    assert window.count_lt(np.array([values[10]]))[0] == 10
