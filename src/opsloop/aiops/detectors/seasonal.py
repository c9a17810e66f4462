"""Seasonal detector: deviation from the daily profile of the series."""

from __future__ import annotations

from typing import ClassVar

from opsloop.aiops.detectors._clocked import ClockedDetector
from opsloop.aiops.detectors._parts import SeasonalResidual, seasonal_lags_within
from opsloop.aiops.detectors.robust import z_to_score

__all__ = ["SeasonalDetector"]


class SeasonalDetector(ClockedDetector):
    """Scores how far a value is from the same time of day on the previous days.

    The daily period is inferred from the timestamps of the first points (for example 288
    points per day for 5-minute samples); the profile is the median of the values exactly
    1..``lags`` days earlier, and the deviation is measured in robust sigmas of past
    deviations. Without timestamps and without ``period``, the previous point stands in for
    the profile (a period of one point).

    Args:
        period: Points per day; None infers it from timestamps.
        lags: Number of previous days in the profile (7 covers a week).
        scale_days: Days over which the spread of deviations is measured.
        z_mid: Robust z-score that maps to an anomaly score of 0.5.
        infer_points: Timestamps looked at to infer the period.
        max_window_points: Cap on the seasonal history and the spread window; on series so
            finely sampled that a day exceeds it, the previous point stands in for the profile.
    """

    alert_threshold: ClassVar[float] = 0.9615

    def __init__(
        self,
        *,
        period: int | None = None,
        lags: int = 7,
        scale_days: float = 3.0,
        z_mid: float = 4.0,
        infer_points: int = 16,
        max_window_points: int = 10_000,
    ) -> None:
        self.period = period
        self.lags = lags
        self.scale_days = scale_days
        self.z_mid = z_mid
        self.infer_points = infer_points
        self.max_window_points = max_window_points
        self._init_clock(period, infer_points)

    def _build(self, points_per_day: int | None) -> None:
        cap = self.max_window_points
        period = points_per_day or 1
        lags = seasonal_lags_within(period, self.lags, cap)
        if lags == 0:
            period, lags = 1, 1
        scale_size = min(max(int(self.scale_days * period), 50), cap)
        self._season = SeasonalResidual(period, lags, scale_size)

    def _features(self, x: float) -> tuple[float, float]:
        residual = self._season.residual(x)
        return residual, self._season.score(residual)

    def _score(self, features: tuple[float, float]) -> float:
        return z_to_score(features[1], self.z_mid)

    def _commit(self, x: float, features: tuple[float, float]) -> None:
        self._season.push(x, features[0])
