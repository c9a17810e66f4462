"""Drift statistics and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats
from scipy.spatial import distance

from opsloop.errors import MonitorError
from opsloop.monitor import (
    DriftResult,
    DriftThresholds,
    ReferenceProfile,
    build_reference_profile,
    compute_drift,
)

#: Evidently's DataDriftPreset rules: one statistic per feature, chosen by reference size.
EVIDENTLY = DriftThresholds(verdict="evidently")


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
    f = compute_drift(profile, pd.DataFrame({"x": cur}), thresholds=EVIDENTLY).features["x"]
    expected = stats.ks_2samp(ref, cur)
    assert f.method == "ks"
    assert f.score == pytest.approx(expected.pvalue, rel=1e-12)
    assert f.drift_detected == (expected.pvalue <= 0.05)
    # By default the same p-value is the test beside the effect size.
    g = compute_drift(profile, pd.DataFrame({"x": cur})).features["x"]
    assert (g.test, g.method) == ("ks", "wasserstein")
    assert g.pvalue == g.pvalue_adjusted == pytest.approx(expected.pvalue, rel=1e-12)
    assert g.drift_detected == (expected.pvalue <= 0.05 and g.wasserstein_normed >= 0.1)


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


@pytest.mark.parametrize(
    ("n_ref", "rules", "method"),
    [
        (1000, EVIDENTLY, "ks"),
        (1001, EVIDENTLY, "wasserstein"),
        (1000, DriftThresholds(), "wasserstein"),
        (1001, DriftThresholds(), "wasserstein"),
    ],
)
def test_verdicts_on_shifted_and_unshifted_numeric_data(
    n_ref: int, rules: DriftThresholds, method: str
) -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(n_ref, seed=5)}))
    stable = compute_drift(profile, pd.DataFrame({"x": _normal(5000, seed=6)}), thresholds=rules)
    shifted = compute_drift(
        profile, pd.DataFrame({"x": _normal(5000, 1.0, seed=7)}), thresholds=rules
    )
    assert stable.features["x"].method == shifted.features["x"].method == method
    assert not stable.features["x"].drift_detected and not stable.dataset_drift
    assert shifted.features["x"].drift_detected and shifted.dataset_drift


def test_low_cardinality_numeric_features_are_tested_as_values() -> None:
    rng = np.random.default_rng(8)
    small = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 500)}))
    large = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 5000)}))
    binary = build_reference_profile(pd.DataFrame({"x": rng.choice([0.0, 1.0], 500)}))
    cur = pd.DataFrame({"x": rng.choice([0.0, 1.0, 2.0], 800, p=[0.6, 0.3, 0.1])})

    def method(profile: ReferenceProfile, window: pd.DataFrame) -> str:
        return compute_drift(profile, window, thresholds=EVIDENTLY).features["x"].method

    assert method(small, cur) == "chisquare"
    assert method(large, cur) == "jensenshannon"
    assert method(binary, cur) == "chisquare"  # 3 values together
    cur_binary = pd.DataFrame({"x": rng.choice([0.0, 1.0], 800)})
    assert method(binary, cur_binary) == "z"
    # New values in the window count too: with more than 5 distinct, distribution tests apply.
    wide = pd.DataFrame({"x": rng.normal(size=800)})
    assert method(small, wide) == "ks"
    # By default: a chi-square test on the counts beside the Jensen-Shannon distance.
    f = compute_drift(small, cur).features["x"]
    assert (f.test, f.method, f.drift_detected) == ("chisquare", "jensenshannon", True)
    assert compute_drift(small, wide).features["x"].test == "ks"


def test_categorical_statistics_equal_scipy() -> None:
    rng = np.random.default_rng(9)
    ref = rng.choice(["a", "b", "c"], 800, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c"], 600, p=[0.4, 0.3, 0.3])
    profile = build_reference_profile(pd.DataFrame({"k": ref}))
    f = compute_drift(profile, pd.DataFrame({"k": cur}), thresholds=EVIDENTLY).features["k"]
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
    # The default test is two-sample: the reference is a sample too.
    table = np.vstack((ref_counts, cur_counts))
    homogeneity = stats.chi2_contingency(table, correction=False).pvalue
    assert f.test == "chisquare" and f.pvalue == pytest.approx(homogeneity)


def test_rare_values_are_pooled_in_the_chisquare_test() -> None:
    ref = ["a"] * 600 + ["b"] * 300 + ["c"] * 60 + ["r1"] * 25 + ["r2"] * 15
    cur = ["a"] * 55 + ["b"] * 30 + ["c"] * 7 + ["r1"] * 5 + ["r2"] * 3
    profile = build_reference_profile(pd.DataFrame({"k": ref}))
    f = compute_drift(profile, pd.DataFrame({"k": cur})).features["k"]
    # Expected counts of r1 and r2 in the window: about 2.7 and 1.6; pooled, 4.4 is still
    # under 5, so the pooled pair is tested apart (Fisher) and the rest with chi-square.
    fisher = stats.fisher_exact([[40, 960], [8, 92]]).pvalue
    rest = stats.chi2_contingency([[600, 300, 60], [55, 30, 7]], correction=False).pvalue
    assert f.pvalue == pytest.approx(min(1.0, 2 * min(fisher, rest)))
    # Pooled cells large enough for the chi-square test: one test on every cell.
    window = ["a"] * 80 + ["b"] * 45 + ["c"] * 10 + ["r1"] * 8 + ["r2"] * 7
    more = compute_drift(profile, pd.DataFrame({"k": window})).features["k"]
    table = [[40, 600, 300, 60], [15, 80, 45, 10]]
    assert more.pvalue == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_pvalues_are_adjusted_across_the_features_of_a_window() -> None:
    ref = pd.DataFrame({f"f{i}": _normal(3000, seed=i) for i in range(5)})
    cur = pd.DataFrame({f"f{i}": _normal(200, 0.25 * i, seed=20 + i) for i in range(5)})
    profile = build_reference_profile(ref)
    raw = compute_drift(profile, cur, thresholds=DriftThresholds(multiple_testing="none"))
    pvalues = np.array([raw.features[f"f{i}"].pvalue for i in range(5)])
    assert [raw.features[f"f{i}"].pvalue_adjusted for i in range(5)] == list(pvalues)
    bh = compute_drift(profile, cur)
    expected = stats.false_discovery_control(pvalues, method="bh")
    assert [bh.features[f"f{i}"].pvalue_adjusted for i in range(5)] == pytest.approx(expected)
    bonferroni = compute_drift(
        profile, cur, thresholds=DriftThresholds(multiple_testing="bonferroni")
    )
    assert [bonferroni.features[f"f{i}"].pvalue_adjusted for i in range(5)] == pytest.approx(
        np.minimum(pvalues * 5, 1.0)
    )
    for result in (raw, bh, bonferroni):
        for f in result.features.values():
            assert f.pvalue_adjusted is not None and f.score is not None
            assert f.drift_detected == (f.pvalue_adjusted <= 0.05 and f.score >= 0.1)


def test_drift_needs_a_significant_test_and_a_large_enough_effect() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(20_000, seed=30)}))
    # Significant but small: a shift of 0.07 standard deviations in 100,000 rows.
    tiny = compute_drift(profile, pd.DataFrame({"x": _normal(100_000, 0.14, seed=31)}))
    f = tiny.features["x"]
    assert f.pvalue is not None and f.pvalue < 1e-6 and f.score is not None and f.score < 0.1
    assert not f.drift_detected
    # Large but not significant: in 40 values, a distance above the threshold is noise.
    noise = compute_drift(profile, pd.DataFrame({"x": _normal(40, 0.0, seed=32)}))
    g = noise.features["x"]
    assert g.score is not None and g.score >= 0.1 and g.pvalue_adjusted is not None
    assert g.pvalue_adjusted > 0.05 and not g.drift_detected
    loose = compute_drift(
        profile,
        pd.DataFrame({"x": _normal(100_000, 0.14, seed=31)}),
        thresholds=DriftThresholds(wasserstein=0.05),
    )
    assert loose.features["x"].drift_detected


def test_too_few_values_get_no_verdict() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": _normal(1000), "k": ["a", "b"] * 500}))
    window = pd.DataFrame({"x": _normal(29, 5.0), "k": ["c"] * 29})
    result = compute_drift(profile, window)
    for f in result.features.values():
        assert f.status == "too_few" and not f.drift_detected and f.count == 29
        assert f.score is not None  # the statistics are still reported
    assert (result.n_features, result.n_drifted, result.dataset_drift) == (0, 0, False)
    low = compute_drift(profile, window, thresholds=DriftThresholds(min_count=29))
    assert low.n_drifted == 2 and low.dataset_drift


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"min_count": 0}, "min_count"),
        ({"multiple_testing": "holm"}, "multiple_testing"),
        ({"verdict": "strict"}, "verdict"),
    ],
)
def test_bad_drift_settings_name_the_field(setting: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DriftThresholds.model_validate(setting)


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
    f = compute_drift(profile, cur, thresholds=EVIDENTLY).features["k"]
    assert f.unseen_categories == ["new", "newer"]
    assert f.unseen_rate == pytest.approx(10 / 100)
    assert f.missing_rate == pytest.approx(10 / 110)
    assert (f.chisquare_statistic, f.score, f.drift_detected) == (math.inf, 0.0, True)
    # By default 10 % of the window in categories the reference never had is drift too.
    g = compute_drift(profile, cur).features["k"]
    assert g.drift_detected and g.pvalue is not None and g.pvalue < 1e-4
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
    assert f.pvalue == pytest.approx(stats.ks_2samp(ref, kept).pvalue)


def test_nullable_and_integer_columns() -> None:
    profile = build_reference_profile(
        pd.DataFrame({"x": pd.array([*range(100), None], dtype="Int64")})
    )
    cur = pd.DataFrame({"x": pd.array([1, 2, None, 4], dtype="Int64")})
    f = compute_drift(profile, cur).features["x"]
    assert f.count == 3 and f.missing_rate == pytest.approx(0.25)


def test_constant_columns() -> None:
    small = build_reference_profile(pd.DataFrame({"c": np.ones(100), "k": ["same"] * 100}))
    window = pd.DataFrame({"c": np.ones(50), "k": ["same"] * 50})
    result = compute_drift(small, window, thresholds=EVIDENTLY)
    assert result.features["c"].method == "z" and result.features["c"].score == 1.0
    assert result.features["k"].score == 1.0 and result.n_drifted == 0
    by_default = compute_drift(small, window)
    assert [f.pvalue for f in by_default.features.values()] == [1.0, 1.0]
    assert by_default.n_drifted == 0
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
    window = pd.DataFrame({"x": [np.nan] * 5, "y": _normal(5, 5.0)})
    result = compute_drift(profile, window, thresholds=EVIDENTLY)
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
    chosen = {"numeric_method": "psi", "categorical_method": "chisquare", "psi": 0.2}
    limits = DriftThresholds(verdict="evidently", **chosen)
    result = compute_drift(profile, cur, thresholds=limits)
    x, k = result.features["x"], result.features["k"]
    assert (x.method, x.score, x.threshold) == ("psi", x.psi, 0.2)
    assert (k.method, k.score) == ("chisquare", k.chisquare_pvalue)
    # By default a chosen distance is the effect size; a p-value method leaves the default.
    result = compute_drift(profile, cur, thresholds=DriftThresholds(**chosen))
    x, k = result.features["x"], result.features["k"]
    assert (x.method, x.score, x.threshold, x.test) == ("psi", x.psi, 0.2, "ks")
    assert (k.method, k.score, k.test) == ("jensenshannon", k.jensenshannon, "chisquare")


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
