"""Reference profiles: type detection, bounded size, accuracy bounds, JSON round trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from opsloop.data._ecdf import SortedWindow, ks_wasserstein
from opsloop.errors import MonitorError
from opsloop.monitor import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_reference_profile,
)


def _mixed_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "price": rng.lognormal(3.0, 0.5, n),
            "age": rng.integers(18, 90, n),
            "rooms": rng.integers(1, 5, n),
            "city": rng.choice(["oslo", "rome", "lima"], n),
            "member": rng.random(n) < 0.3,
            "comment": [f"free text number {i}" for i in range(n)],
            "signup": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )


def test_detects_column_types_like_evidently() -> None:
    profile = build_reference_profile(_mixed_frame())
    kinds = {name: f.kind for name, f in profile.features.items()}
    assert kinds == {
        "price": "numeric",
        "age": "numeric",  # integers with more than 10 distinct values
        "rooms": "categorical",  # integers with at most 10
        "city": "categorical",
        "member": "categorical",
    }
    assert "free text" in profile.skipped["comment"]
    assert "datetime" in profile.skipped["signup"]


def test_explicit_lists_profile_exactly_those_columns() -> None:
    df = _mixed_frame()
    profile = build_reference_profile(df, numeric=["rooms"], categorical=["city"])
    assert list(profile.features) == ["rooms", "city"]
    assert isinstance(profile.features["rooms"], NumericProfile)
    assert profile.skipped == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"numeric": ["nope"]}, "no column(s): nope"),
        ({"numeric": ["price"], "categorical": ["price"]}, "more than once: price"),
        ({"numeric": ["city"]}, "column 'city': expected numbers"),
        ({"numeric": ["empty"]}, "column 'empty': no non-missing values"),
    ],
)
def test_explicit_list_errors_name_the_column(kwargs: dict[str, Any], message: str) -> None:
    df = _mixed_frame(100).assign(empty=np.nan)
    with pytest.raises(MonitorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_reference_profile(df, **kwargs)


def test_empty_reference_is_refused() -> None:
    with pytest.raises(MonitorError, match="no rows"):
        build_reference_profile(pd.DataFrame({"x": pd.Series([], dtype=float)}))


def test_all_missing_detected_column_is_skipped() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "gone": [np.nan] * 3})
    profile = build_reference_profile(df)
    assert list(profile.features) == ["x"]
    assert profile.skipped == {"gone": "no non-missing values"}


def test_numeric_summary_is_exact_for_small_references() -> None:
    values = np.array([3.0, np.nan, 1.0, np.inf, 2.0, 2.0, -np.inf, 5.0])
    profile = build_reference_profile(pd.DataFrame({"x": values}))
    x = profile.features["x"]
    assert isinstance(x, NumericProfile)
    finite = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    assert (x.rows, x.count, x.missing) == (8, 5, 3)
    assert x.missing_rate == pytest.approx(3 / 8)
    assert (x.min, x.max) == (1.0, 5.0)
    assert x.mean == pytest.approx(finite.mean())
    assert x.std == pytest.approx(np.std(finite))
    assert x.sample_exact and x.sample_counts is None
    np.testing.assert_array_equal(x.sample, finite)
    assert x.values == [1.0, 2.0, 3.0, 5.0] and x.value_counts == [1, 2, 1, 1]
    assert sum(x.psi_reference) == pytest.approx(1.0)


def test_size_is_bounded_and_the_error_bounds_hold() -> None:
    rng = np.random.default_rng(4)
    reference = rng.lognormal(0.0, 1.0, 60_000)
    current = rng.lognormal(0.1, 1.0, 20_000)
    profile = build_reference_profile(pd.DataFrame({"x": reference}), sample_size=1_000)
    x = profile.features["x"]
    assert isinstance(x, NumericProfile)
    assert x.sample.size == 1_000 and not x.sample_exact
    assert x.sample_counts is not None and int(x.sample_counts.sum()) == 60_000
    assert len(profile.model_dump_json()) < 40_000

    ks, w = ks_wasserstein(x.sample, SortedWindow(np.sort(current), 1.0), x.sample_cumcounts)
    true_ks = stats.ks_2samp(reference, current).statistic
    true_w = stats.wasserstein_distance(reference, current)
    assert 0 < x.sample_ks_error < 0.01 and 0 < x.sample_wasserstein_error < 0.01 * x.std
    assert abs(ks - true_ks) <= x.sample_ks_error + 1e-12
    assert abs(w - true_w) <= x.sample_wasserstein_error + 1e-12


def test_categories_are_capped_and_the_rest_pooled() -> None:
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5
    profile = build_reference_profile(pd.DataFrame({"k": values}), max_categories=2)
    k = profile.features["k"]
    assert isinstance(k, CategoricalProfile)
    assert (k.categories, k.counts, k.other, k.n_unique) == (["a", "b"], [50, 30], 20, 4)


def test_json_round_trip_keeps_everything() -> None:
    df = _mixed_frame(20_000)
    profile = build_reference_profile(df, predictions=np.linspace(0, 1, len(df)), sample_size=500)
    text = profile.model_dump_json()
    again = ReferenceProfile.model_validate_json(text)
    assert again.model_dump_json() == text
    price, price_again = profile.features["price"], again.features["price"]
    assert isinstance(price, NumericProfile) and isinstance(price_again, NumericProfile)
    np.testing.assert_array_equal(price.sample, price_again.sample)
    assert price_again.sample_counts is not None and price.sample_counts is not None
    np.testing.assert_array_equal(price.sample_counts, price_again.sample_counts)
    assert not price_again.sample.flags.writeable
    member = again.features["member"]
    assert isinstance(member, CategoricalProfile)
    assert set(member.categories) == {True, False}  # booleans stay booleans
    rooms = again.features["rooms"]
    assert isinstance(rooms, CategoricalProfile)
    assert all(type(c) is int for c in rooms.categories)
    assert again.prediction is not None and again.prediction.kind == "numeric"


def test_corrupt_sample_is_rejected() -> None:
    profile = build_reference_profile(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    text = profile.model_dump_json()
    with pytest.raises(ValueError, match="sample"):
        ReferenceProfile.model_validate_json(text.replace('"sample":"', '"sample":"AAA', 1))
    data = profile.model_dump()
    data["features"]["x"]["sample"] = np.array([3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="sample must be sorted"):
        ReferenceProfile.model_validate(data)
    data["features"]["x"]["sample"] = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="must hold all count values"):
        ReferenceProfile.model_validate(data)


def test_predictions_must_be_one_per_row() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(MonitorError, match=r"shape \(3, 2\)"):
        build_reference_profile(df, predictions=np.zeros((3, 2)))
    labels = build_reference_profile(df, predictions=np.array(["yes", "no", "no", "no"]))
    assert isinstance(labels.prediction, CategoricalProfile)
