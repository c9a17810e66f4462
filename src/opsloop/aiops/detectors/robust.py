"""Robust baselines: rolling median/MAD and EWMA z-scores."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from opsloop.aiops.detectors._window import RollingExtremes, RollingMedian
from opsloop.aiops.detectors.base import Detector, is_missing

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["EWMADetector", "MADDetector", "z_to_score"]


def z_to_score(z: float, z_mid: float) -> float:
    """Map a non-negative z-score to [0, 1): 0 -> 0, ``z_mid`` -> 0.5, large -> 1."""
    if math.isnan(z) or z <= 0.0:
        return 0.0
    if math.isinf(z):
        return 1.0
    return z / (z + z_mid)


class MADDetector(Detector):
    """Robust z-score of a value against the rolling median of the previous points.

    The spread is the rolling median of past absolute deviations from the median (a streaming
    MAD), plus a hundredth of the window's range so a nearly flat series does not turn every
    wiggle into an alarm.

    Args:
        window: Number of previous points the median and spread are taken over.
        z_mid: Robust z-score that maps to an anomaly score of 0.5.
        min_points: Points needed before anything scores above 0.
    """

    alert_threshold: ClassVar[float] = 0.962

    def __init__(self, window: int = 288, z_mid: float = 4.0, min_points: int = 20) -> None:
        self.window = window
        self.z_mid = z_mid
        self.min_points = min_points
        self._values = RollingMedian(window)
        self._spread = RollingMedian(window)
        self._range = RollingExtremes(window)

    def _z(self, x: float) -> float:
        if self._values.count < self.min_points:
            return 0.0
        median = self._values.median()
        deviation = abs(x - median)
        if deviation == 0.0:
            return 0.0
        spread = self._spread.median() if self._spread.count else 0.0
        scale = 1.4826 * spread + 0.01 * (self._range.max() - self._range.min())
        return deviation / (scale + 1e-12 * (abs(median) + 1.0))

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x`` against the previous ``window`` points."""
        if is_missing(x):
            return 0.0
        return z_to_score(self._z(x), self.z_mid)

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Take ``x`` into the rolling window."""
        if is_missing(x):
            return
        if self._values.count:
            self._spread.push(abs(x - self._values.median()))
        self._values.push(x)
        self._range.push(x)


class EWMADetector(Detector):
    """z-score of a value against an exponentially weighted mean and variance.

    Args:
        alpha: Weight of the newest point (about ``2 / alpha`` points of memory).
        z_mid: z-score that maps to an anomaly score of 0.5.
        min_points: Points needed before anything scores above 0.
    """

    alert_threshold: ClassVar[float] = 0.641

    def __init__(self, alpha: float = 0.02, z_mid: float = 4.0, min_points: int = 20) -> None:
        self.alpha = alpha
        self.z_mid = z_mid
        self.min_points = min_points
        self._n = 0
        self._mean = 0.0
        self._var = 0.0

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x`` against the weighted mean and variance."""
        if is_missing(x) or self._n < self.min_points:
            return 0.0
        deviation = abs(x - self._mean)
        if deviation == 0.0:
            return 0.0
        scale = math.sqrt(self._var) + 1e-9 * (abs(self._mean) + 1.0)
        return z_to_score(deviation / scale, self.z_mid)

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Update the weighted mean and variance with ``x``."""
        if is_missing(x):
            return
        if self._n < self.min_points:
            self._n += 1
            # Plain running mean and variance during warm-up, so the first point does not
            # dominate the exponential average.
            delta = x - self._mean
            self._mean += delta / self._n
            self._var += (delta * (x - self._mean) - self._var) / self._n
            return
        alpha = self.alpha
        delta = x - self._mean
        self._mean += alpha * delta
        self._var = (1.0 - alpha) * (self._var + alpha * delta * delta)
