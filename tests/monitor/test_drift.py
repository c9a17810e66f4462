"""Drift statistics and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from opsloop.errors import MonitorError
from opsloop.monitor import (
    DriftResult,
    DriftThresholds,
    build_reference_profile,
    compute_drift,
)


def _normal(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(10.0 + shift, 2.0, n)


def test_numeric_statistics_equal_scipy_when_the_reference_is_kept_whole() -> None:
    ref = _normal(4000, seed=1)
    cur = _normal(50_000, 0.3, seed=2)
    profile = build_reference_profile(pd.DataFrame({"x": ref}))
    f = compute_drift(profile, pd.DataFrame({"x": cur})).features["x"]
    expected = stats.ks_2samp(ref, cur)
    assert f.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert f.ks_pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    w = stats.wasserstein_distance(ref, cur)
    assert f.wasserstein == pytest.approx(w, rel=1e-9)
    assert f.wasserstein_normed == pytest.approx(w / np.std(ref), rel=1e-9)
    assert f.ks_error_bound == 0.0 and f.wasserstein_error_bound == 0.0
    assert f.current_mean == pytest.approx(cur.mean()) and f.current_std == pytest.approx(cur.std())


def test_small_samples_use_scipys_exact_ks_pvalue() -> None:
    ref, cur = _normal(300, seed=3), _normal(200, 0.5, seed=4)
    profile = build_reference_profile(pd.DataFrame({"x": ref}))
    f = compute_drift(profile, pd.DataFrame({"x": cur})).features["x"]
    expected = stats.ks_2samp(ref, cur)
    assert f.method == "ks"
    assert f.score == pytest.approx(expected.pvalue, rel=1e-12)
    assert f.drift_detected == (expected.pvalue <= 0.05)


def test_psi_on_reference_deciles() -> None:
    ref = np.arange(1000, dtype=float)
    profile = build_reference_profile(pd.DataFrame({"x": ref}))
    # Half of the current window in the lowest decile, the rest spread evenly over the others.
    cur = np.concatenate([np.full(450, 5.0), np.repeat(np.arange(150.0, 1000.0, 100.0), 50)])
    f = compute_drift(profile, pd.DataFrame({"x": cur})).features["x"]
    ref_share = np.full(10, 0.1)
    cur_share = np.array([0.5] + [0.5 / 9] * 9)
    expected = float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))
    assert f.psi == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("n_ref", "method"), [(1000, "ks"), (1001, "wasserstein")])
def test_verdicts_on_shifted_and_unshifted_numeric_data(n_ref: int, method: str) -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(n_ref, seed=5)}))
    stable = compute_drift(profile, pd.DataFrame({"x": _normal(5000, seed=6)}))
    shifted = compute_drift(profile, pd.DataFrame({"x": _normal(5000, 1.0, seed=7)}))
    assert stable.features["x"].method == shifted.features["x"].method == method
    assert not stable.features["x"].drift_detected and not stable.dataset_drift
    assert shifted.features["x"].drift_detected and shifted.dataset_drift


def test_low_cardinality_numeric_features_are_tested_as_values() -> None:
    rng = np.random.default_rng(8)
    small = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 500)}))
    large = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 5000)}))
    binary = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0], 500)}))
    cur = pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 800, p=[0.6, 0.3, 0.1])})
    assert compute_drift(small, cur).features["x"].method == "chisquare"
    assert compute_drift(large, cur).features["x"].method == "jensenshannon"
    assert compute_drift(binary, cur).features["x"].method == "chisquare"  # 3 values together
    cur_binary = pd.DataFrame({"x": rng.choice([0.0, 1.0], 800)})
    assert compute_drift(binary, cur_binary).features["x"].method == "z"
    # New values in the window count too: with more than 5 distinct, distribution tests apply.
    wide = pd.DataFrame({"x": rng.normal(size=800)})
    assert compute_drift(small, wide).features["x"].method == "ks"


def test_categorical_statistics_equal_scipy() -> None:
    rng = np.random.default_rng(9)
    ref = rng.choice(["a", "b", "c"], 800, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c"], 600, p=[0.4, 0.3, 0.3])
    profile = build_reference_profile(pd.DataFrame({"k": ref}))
    f = compute_drift(profile, pd.DataFrame({"k": cur})).features["k"]
    keys = ["a", "b", "c"]
    ref_counts = np.array([np.sum(ref == k) for k in keys], dtype=float)
    cur_counts = np.array([np.sum(cur == k) for k in keys], dtype=float)
    chi = stats.chisquare(cur_counts, ref_counts * (600 / 800))
    assert f.method == "chisquare"
    assert f.chisquare_statistic == pytest.approx(chi.statistic)
    assert f.score == pytest.approx(chi.pvalue)
    js = distance.jensenshannon(ref_counts / 800, cur_counts / 600)
    assert f.jensenshannon == pytest.approx(js)
    # z-test of the first key in sorted order ('a') against the rest, written out by hand.
    p1, p2 = 1 - ref_counts[0] / 800, 1 - cur_counts[0] / 600
    pooled = (p1 * 800 + p2 * 600) / 1400
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 800 + 1 / 600))
    assert f.z_pvalue == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))))


def test_categorical_verdicts_on_shifted_and_unshifted_data() -> None:
    rng = np.random.default_rng(10)
    profile = build_reference_profile(pd.DataFrame({"k": rng.choice(["x", "y", "z"], 5000)}))
    same = pd.DataFrame({"k": rng.choice(["x", "y", "z"], 5000)})
    moved = pd.DataFrame({"k": rng.choice(["x", "y", "z"], 5000, p=[0.7, 0.2, 0.1])})
    assert compute_drift(profile, same).features["k"].method == "jensenshannon"
    assert not compute_drift(profile, same).features["k"].drift_detected
    assert compute_drift(profile, moved).features["k"].drift_detected


def test_unseen_categories() -> None:
    profile = build_reference_profile(pd.DataFrame({"k": ["a", "b", "c"] * 100}))
    cur = pd.DataFrame({"k": ["a", "b", "c"] * 30 + ["new"] * 9 + ["newer"] + [None] * 10})
    f = compute_drift(profile, cur).features["k"]
    assert f.unseen_categories == ["new", "newer"]
    assert f.unseen_rate == pytest.approx(10 / 100)
    assert f.missing_rate == pytest.approx(10 / 110)
    assert (f.chisquare_statistic, f.score, f.drift_detected) == (math.inf, 0.0, True)
    # The result still serialises, infinity included.
    text = compute_drift(profile, cur).model_dump_json()
    assert DriftResult.model_validate_json(text).features["k"].chisquare_statistic == math.inf


def test_pooled_rare_categories_are_not_called_unseen() -> None:
    profile = build_reference_profile(
        pd.DataFrame({"k": ["a"] * 50 + ["b"] * 40 + ["rare"] * 10}), max_categories=2
    )
    f = compute_drift(profile, pd.DataFrame({"k": ["a", "b", "rare", "other"] * 5})).features["k"]
    assert f.unseen_rate == 0.0 and f.unseen_categories == []


def test_missing_values_are_left_out_of_the_tests() -> None:
    ref = _normal(500, seed=11)
    cur = _normal(400, 0.4, seed=12)
    with_gaps = cur.copy()
    with_gaps[::4] = np.nan
    with_gaps[1] = np.inf
    profile = build_reference_profile(pd.DataFrame({"x": ref}))
    f = compute_drift(profile, pd.DataFrame({"x": with_gaps})).features["x"]
    kept = with_gaps[np.isfinite(with_gaps)]
    assert f.missing_rate == pytest.approx(101 / 400)
    assert f.count == kept.size
    assert f.score == pytest.approx(stats.ks_2samp(ref, kept).pvalue)


def test_nullable_and_integer_columns() -> None:
    profile = build_reference_profile(
        pd.DataFrame({"x": pd.array([*range(100), None], dtype="Int64")})
    )
    cur = pd.DataFrame({"x": pd.array([1, 2, None, 4], dtype="Int64")})
    f = compute_drift(profile, cur).features["x"]
    assert f.count == 3 and f.missing_rate == pytest.approx(0.25)


def test_constant_columns() -> None:
    small = build_reference_profile(pd.DataFrame({"c": np.ones(100), "k": ["same"] * 100}))
    result = compute_drift(small, pd.DataFrame({"c": np.ones(50), "k": ["same"] * 50}))
    assert result.features["c"].method == "z" and result.features["c"].score == 1.0
    assert result.features["k"].score == 1.0 and result.n_drifted == 0
    large = build_reference_profile(pd.DataFrame({"c": np.ones(5000)}))
    moved = compute_drift(large, pd.DataFrame({"c": np.full(50, 2.0)})).features["c"]
    assert moved.method == "jensenshannon" and moved.drift_detected
    assert moved.out_of_range_rate == 1.0


def test_out_of_range_rate() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": np.linspace(0.0, 1.0, 2000)}))
    cur = pd.DataFrame({"x": [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, np.nan]})
    f = compute_drift(profile, cur).features["x"]
    assert f.out_of_range_rate == pytest.approx(3 / 6)


def test_empty_window_is_a_clear_error() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(MonitorError, match=r"current window is empty \(0 rows\)") as info:
        compute_drift(profile, pd.DataFrame({"x": pd.Series([], dtype=float)}))
    assert info.value.hint


def test_window_errors_name_the_column() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    with pytest.raises(MonitorError, match=r"no column\(s\): y"):
        compute_drift(profile, pd.DataFrame({"x": [1.0]}))
    with pytest.raises(MonitorError, match="column 'y': expected numbers, got dtype"):
        compute_drift(profile, pd.DataFrame({"x": [1.0], "y": ["text"]}))


def test_all_missing_feature_is_reported_but_not_counted() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(100), "y": _normal(100)}))
    result = compute_drift(profile, pd.DataFrame({"x": [np.nan] * 5, "y": _normal(5, 5.0)}))
    assert result.features["x"].status == "no_data"
    assert result.features["x"].missing_rate == 1.0
    assert (result.n_features, result.n_drifted, result.dataset_drift) == (1, 1, True)


def test_dataset_drift_uses_the_share_threshold() -> None:
    ref = pd.DataFrame({f"f{i}": _normal(2000, seed=i) for i in range(4)})
    cur = pd.DataFrame(
        {f"f{i}": _normal(2000, 2.0 if i < 2 else 0.0, seed=10 + i) for i in range(4)}
    )
    profile = build_reference_profile(ref)
    result = compute_drift(profile, cur)
    assert (result.n_drifted, result.share_drifted, result.dataset_drift) == (2, 0.5, True)
    assert result.drifted_features == ["f0", "f1"]
    strict = compute_drift(profile, cur, thresholds=DriftThresholds(drift_share=0.75))
    assert not strict.dataset_drift


def test_method_can_be_chosen() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(3000), "k": ["a", "b"] * 1500}))
    cur = pd.DataFrame({"x": _normal(3000, 0.05, seed=1), "k": ["a", "b", "b"] * 1000})
    limits = DriftThresholds(numeric_method="psi", categorical_method="chisquare", psi=0.2)
    result = compute_drift(profile, cur, thresholds=limits)
    x, k = result.features["x"], result.features["k"]
    assert (x.method, x.score, x.threshold) == ("psi", x.psi, 0.2)
    assert (k.method, k.score) == ("chisquare", k.chisquare_pvalue)


def test_prediction_drift() -> None:
    df = pd.DataFrame({"x": _normal(2000)})
    profile = build_reference_profile(df, predictions=_normal(2000, seed=1))
    same = compute_drift(profile, df, predictions=_normal(2000, seed=2))
    moved = compute_drift(profile, df, predictions=_normal(2000, 1.0, seed=3))
    assert same.prediction is not None and not same.prediction.drift_detected
    assert moved.prediction is not None and moved.prediction.drift_detected
    assert moved.n_features == 1 and not moved.dataset_drift  # predictions are not features
    bare = build_reference_profile(df)
    with pytest.raises(MonitorError, match="has none to compare"):
        compute_drift(bare, df, predictions=_normal(10))


def test_result_json_round_trip() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(2000), "k": ["a", "b"] * 1000}))
    result = compute_drift(profile, pd.DataFrame({"x": _normal(100, 1.0), "k": ["a"] * 100}))
    text = result.model_dump_json()
    assert DriftResult.model_validate_json(text).model_dump_json() == text


def test_sampled_reference_stays_within_its_reported_bounds() -> None:
    ref = np.random.default_rng(13).gamma(2.0, 3.0, 40_000)
    cur = np.random.default_rng(14).gamma(2.0, 3.3, 30_000)
    profile = build_reference_profile(pd.DataFrame({"x": ref}), sample_size=2_000)
    f = compute_drift(profile, pd.DataFrame({"x": cur})).features["x"]
    assert f.ks_statistic is not None and f.ks_error_bound is not None
    assert f.wasserstein is not None and f.wasserstein_error_bound is not None
    assert 0 < f.wasserstein_error_bound < 0.01 * np.std(ref)
    assert abs(f.ks_statistic - stats.ks_2samp(ref, cur).statistic) <= f.ks_error_bound
    assert abs(f.wasserstein - stats.wasserstein_distance(ref, cur)) <= f.wasserstein_error_bound
    # The p-value uses the full reference size, as scipy does on the full data.
    expected_p = stats.kstwo.sf(f.ks_statistic, round(40_000 * 30_000 / 70_000))
    assert f.ks_pvalue == pytest.approx(expected_p)
