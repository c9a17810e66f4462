"""Behaviour of the individual detectors and of the registry."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from opsloop.aiops import (
    DETECTORS,
    EnsembleDetector,
    EWMADetector,
    FusedDetector,
    MADDetector,
    SeasonalDetector,
    default_detector,
    get_detector,
)
from opsloop.aiops.detectors import to_seconds
from opsloop.errors import AIOpsError

from ._series import POINTS_PER_DAY, daily_series, five_minute_stamps


def test_registry_names_every_detector_and_the_default_is_fused() -> None:
    assert set(DETECTORS) == {
        "mad",
        "ewma",
        "seasonal",
        "ensemble",
        "context",
        "cad",
        "artime",
        "fused",
        "likelihood",
    }
    assert isinstance(default_detector(), FusedDetector)
    assert get_detector("mad", window=50).window == 50


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(AIOpsError, match="unknown detector 'nope'; known detectors: artime, cad, "):
        get_detector("nope")
    with pytest.raises(AIOpsError, match="detector 'mad' has no parameter 'alpha'"):
        get_detector("mad", alpha=0.1)
    with pytest.raises(AIOpsError, match="MADDetector has no parameter 'bogus'"):
        MADDetector().clone(bogus=1)


def test_to_seconds_treats_naive_time_as_utc() -> None:
    naive = datetime(2024, 3, 31, 2, 30)
    aware = naive.replace(tzinfo=UTC)
    assert to_seconds(naive) == to_seconds(aware) == aware.timestamp()
    shifted = aware.astimezone(timezone(timedelta(hours=5)))
    assert to_seconds(shifted) == aware.timestamp()
    assert to_seconds(None) is None


def test_mad_flags_a_spike_but_not_noise() -> None:
    rng = np.random.default_rng(0)
    values = 10 + rng.standard_normal(600)
    values[500] = 30.0
    scores = MADDetector().score_many(values)
    assert scores[500] > 0.7
    assert np.percentile(scores[100:500], 99) < 0.5


def test_ewma_flags_a_spike_and_adapts_to_a_new_level() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([10 + rng.standard_normal(500), 30 + rng.standard_normal(1500)])
    scores = EWMADetector(alpha=0.02).score_many(values)
    assert scores[500] > 0.7
    assert scores[-200:].max() < 0.6


def test_seasonal_infers_the_daily_period_and_flags_a_missing_peak() -> None:
    n = 10 * POINTS_PER_DAY
    values = daily_series(n, seed=2, noise=0.5)
    peak = 8 * POINTS_PER_DAY + POINTS_PER_DAY // 4  # the sine's maximum on day 9
    values[peak - 10 : peak + 10] -= 20.0
    detector = SeasonalDetector()
    scores = detector.score_many(values, five_minute_stamps(n))
    assert detector.points_per_day == POINTS_PER_DAY
    assert scores[peak - 10 : peak + 10].max() > 0.7
    # A value that is ordinary for its time of day but would be odd at another time is fine.
    assert scores[2 * POINTS_PER_DAY : 8 * POINTS_PER_DAY].max() < 0.5


def test_seasonal_with_a_given_period_needs_no_timestamps() -> None:
    detector = SeasonalDetector(period=48)
    assert detector.points_per_day == 48
    scores = detector.score_many(daily_series(500, seed=3))
    assert scores.shape == (500,)


def test_ensemble_flags_a_level_shift_once() -> None:
    n = 8 * POINTS_PER_DAY
    values = daily_series(n, seed=4, noise=1.0)
    shift = 6 * POINTS_PER_DAY + 37
    values[shift:] += 60.0
    scores = EnsembleDetector().score_many(values, five_minute_stamps(n))
    assert scores[shift] > 0.8
    # Before the shift nothing comes close; after it the alarm is not repeated at full strength.
    assert scores[3 * POINTS_PER_DAY : shift].max() < 0.6
    assert scores[shift + 1 :].max() < scores[shift]


def test_ensemble_window_sizes_follow_the_sampling_step() -> None:
    hourly = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(40)]
    detector = EnsembleDetector()
    for i, t in enumerate(hourly):
        detector.learn_one(float(i % 24), t)
    assert detector.points_per_day == 24
    assert EnsembleDetector(period=288).points_per_day == 288
    without = EnsembleDetector()
    without.learn_one(1.0)
    assert without.points_per_day is None


def test_early_points_score_zero_while_the_step_is_inferred() -> None:
    detector = EnsembleDetector(infer_points=16)
    stamps = five_minute_stamps(16)
    scores = [detector.score_learn_one(float(i * 1000), t) for i, t in enumerate(stamps)]
    assert scores == [0.0] * 16
    assert detector.points_per_day == POINTS_PER_DAY


def test_windows_are_capped_on_finely_sampled_series() -> None:
    # One point per second: a day is 86 400 points, more than any window may hold.
    start = datetime(2024, 1, 1)
    stamps = [start + timedelta(seconds=i) for i in range(30_000)]
    values = daily_series(30_000, seed=5)
    for detector in (EnsembleDetector(max_window_points=5000), SeasonalDetector()):
        detector.score_many(values, stamps)
        assert detector.points_per_day == 86_400
        assert len(pickle.dumps(detector)) < 1_000_000
