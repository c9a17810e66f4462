"""The default detector: calibrated range, smoothed-range and seasonal features, fused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from opsloop.aiops.detectors._clocked import ClockedDetector
from opsloop.aiops.detectors._parts import (
    PeakSuppressor,
    RangeExcess,
    RecordRatio,
    SeasonalResidual,
    seasonal_lags_within,
    squash,
)
from opsloop.aiops.detectors._window import RollingMean

__all__ = ["EnsembleDetector"]

# Below this many points per day a daily profile is too coarse to be worth modelling.
_MIN_SEASONAL_PERIOD = 4


@dataclass(frozen=True, slots=True)
class _Features:
    smoothed: float
    excess: float
    smoothed_excess: float
    residual: float
    seasonal: float
    raw_score: float


class EnsembleDetector(ClockedDetector):
    """Fuses three views of a metric series into one calibrated anomaly score.

    1. *Range*: how far the value falls outside the range of the last ``range_days`` (new
       highs and lows, level shifts).
    2. *Smoothed range*: the same for the mean of the last ``smooth_points`` values, which
       catches shifts that hide in noise.
    3. *Seasonal*: robust deviation from the same time of day on the previous
       ``seasonal_lags`` days.

    Each feature is calibrated against its own recent history (its ratio to its maximum over
    the last ``calibration_days``), so "larger than anything seen lately" means the same on
    every series; the largest weighted ratio is squashed to [0, 1) on a log scale. Finally a
    score that does not beat the scores of the last ``suppress_days`` is damped by
    ``suppress_factor``, so one event raises one alarm.

    Windows in days are sized from the points per day inferred from the timestamps (or
    ``period``); each also has a minimum in points. Memory is bounded by the largest window.

    Args:
        period: Points per day; None infers it from timestamps.
        range_days: Days of history that define the normal range.
        range_min_points: Minimum length of that history in points.
        calibration_days: Days of feature history each feature is compared with.
        calibration_min_points: Minimum length of that history in points.
        smooth_points: Points averaged for the smoothed-range view.
        smooth_weight: Weight of the smoothed-range view.
        seasonal_weight: Weight of the seasonal view (0 turns it off).
        seasonal_lags: Previous days forming the seasonal profile.
        seasonal_scale_days: Days over which the spread of seasonal deviations is measured.
        range_floor: Added to a range view's historic maximum before taking the ratio, so the
            first small excursion after a quiet spell is not infinitely surprising.
        suppress_days: Days a score has to beat to escape damping.
        suppress_min_points: Minimum of that span in points.
        suppress_factor: Factor applied to a damped score.
        infer_points: Timestamps looked at to infer the points per day.
        max_window_points: Cap on every window (and on the seasonal history), which bounds
            memory and time per point on finely sampled series.
    """

    alert_threshold: ClassVar[float] = 0.565

    def __init__(
        self,
        *,
        period: int | None = None,
        range_days: float = 28.0,
        range_min_points: int = 2000,
        calibration_days: float = 1.0,
        calibration_min_points: int = 450,
        smooth_points: int = 6,
        smooth_weight: float = 0.5,
        seasonal_weight: float = 1.5,
        seasonal_lags: int = 7,
        seasonal_scale_days: float = 3.0,
        range_floor: float = 1e-3,
        suppress_days: float = 0.5,
        suppress_min_points: int = 12,
        suppress_factor: float = 0.7,
        infer_points: int = 16,
        max_window_points: int = 10_000,
    ) -> None:
        self.period = period
        self.range_days = range_days
        self.range_min_points = range_min_points
        self.calibration_days = calibration_days
        self.calibration_min_points = calibration_min_points
        self.smooth_points = smooth_points
        self.smooth_weight = smooth_weight
        self.seasonal_weight = seasonal_weight
        self.seasonal_lags = seasonal_lags
        self.seasonal_scale_days = seasonal_scale_days
        self.range_floor = range_floor
        self.suppress_days = suppress_days
        self.suppress_min_points = suppress_min_points
        self.suppress_factor = suppress_factor
        self.infer_points = infer_points
        self.max_window_points = max_window_points
        self._init_clock(period, infer_points)

    def _build(self, points_per_day: int | None) -> None:
        clock, cap = self._clock, self.max_window_points
        range_size = clock.window(self.range_days, self.range_min_points, cap)
        calibration_size = clock.window(self.calibration_days, self.calibration_min_points, cap)
        self._smooth = RollingMean(max(1, self.smooth_points))
        self._range = RangeExcess(range_size)
        self._smoothed_range = RangeExcess(range_size)
        self._range_ratio = RecordRatio(calibration_size, self.range_floor)
        self._smoothed_ratio = RecordRatio(calibration_size, self.range_floor)
        self._season: SeasonalResidual | None = None
        self._season_ratio: RecordRatio | None = None
        lags = seasonal_lags_within(points_per_day, self.seasonal_lags, cap)
        if (
            points_per_day
            and points_per_day >= _MIN_SEASONAL_PERIOD
            and lags
            and self.seasonal_weight > 0
        ):
            scale_size = min(max(int(self.seasonal_scale_days * points_per_day), 50), cap)
            self._season = SeasonalResidual(points_per_day, lags, scale_size)
            # Seasonal deviations are already in robust units, so no floor is needed.
            self._season_ratio = RecordRatio(calibration_size, 1e-9)
        self._suppressor = PeakSuppressor(
            clock.window(self.suppress_days, self.suppress_min_points, cap),
            self.suppress_factor,
        )

    def _features(self, x: float) -> _Features:
        smoothed = self._smooth.mean_with(x)
        excess = self._range.query(x)
        smoothed_excess = self._smoothed_range.query(smoothed)
        surprise = max(
            self._range_ratio.query(excess),
            self.smooth_weight * self._smoothed_ratio.query(smoothed_excess),
        )
        residual = seasonal = 0.0
        if self._season is not None and self._season_ratio is not None:
            residual = self._season.residual(x)
            seasonal = self._season.score(residual)
            surprise = max(surprise, self.seasonal_weight * self._season_ratio.query(seasonal))
        return _Features(smoothed, excess, smoothed_excess, residual, seasonal, squash(surprise))

    def _score(self, features: _Features) -> float:
        return self._suppressor.query(features.raw_score)

    def _commit(self, x: float, features: _Features) -> None:
        self._smooth.push(x)
        self._range.push(x)
        self._smoothed_range.push(features.smoothed)
        self._range_ratio.push(features.excess)
        self._smoothed_ratio.push(features.smoothed_excess)
        if self._season is not None and self._season_ratio is not None:
            self._season.push(x, features.residual)
            self._season_ratio.push(features.seasonal)
        self._suppressor.push(features.raw_score)
