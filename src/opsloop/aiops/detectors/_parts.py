"""Building blocks shared by the detectors: clock, features, calibration, suppression.

Each part answers a query about a new point *before* the point is pushed, so a detector can
score without changing state, then push the same quantities when it learns.
"""

from __future__ import annotations

import math
import statistics

from opsloop.aiops.detectors._window import (
    RollingExtremes,
    RollingMax,
    RollingMean,
    RollingMedian,
)

__all__ = [
    "SECONDS_PER_DAY",
    "Clock",
    "PeakSuppressor",
    "RangeExcess",
    "RecordRatio",
    "SeasonalResidual",
    "seasonal_lags_within",
    "squash",
]

SECONDS_PER_DAY = 86400.0

# Minimum number of points a rolling statistic needs before a feature is trusted.
MIN_POINTS = 20


def squash(u: float) -> float:
    """Map a non-negative surprise to [0, 1) on a log scale (0 -> 0, e - 1 -> 0.5)."""
    if u <= 0.0 or math.isnan(u):
        return 0.0
    if math.isinf(u):
        return 1.0
    lg = math.log1p(u)
    return lg / (1.0 + lg)


class Clock:
    """Infers the number of points per day from the first timestamps of a series.

    Args:
        period: Points per day when known; then nothing is inferred.
        infer_points: How many timestamps to look at before deciding.
    """

    __slots__ = ("_seen", "decided", "infer_points", "points_per_day")

    def __init__(self, period: int | None, infer_points: int) -> None:
        self.infer_points = infer_points
        self.points_per_day: int | None = period
        self.decided = period is not None
        self._seen: list[float] = []

    def feed(self, seconds: float | None) -> None:
        """Look at one more timestamp (None means the series has no timestamps)."""
        if self.decided:
            return
        if seconds is None:
            self.decided = True
            return
        self._seen.append(seconds)
        if len(self._seen) >= self.infer_points:
            self._decide()

    def _decide(self) -> None:
        deltas = [b - a for a, b in zip(self._seen, self._seen[1:], strict=False) if b > a]
        self.decided = True
        self._seen = []
        if deltas:
            step = statistics.median(deltas)
            self.points_per_day = max(1, round(SECONDS_PER_DAY / step))

    def window(self, days: float, min_points: int, max_points: int) -> int:
        """Window length in points: ``days`` of data, within ``[min_points, max_points]``."""
        per_day = self.points_per_day or 0
        return max(min(int(days * per_day), max_points), min_points, 1)


class RangeExcess:
    """How far a value falls outside the range of the previous ``size`` values.

    The excess is measured in units of that range, so it is comparable across series; a
    floor of a thousandth of the recent mean magnitude keeps flat series finite.
    """

    __slots__ = ("_abs", "_range")

    def __init__(self, size: int) -> None:
        self._range = RollingExtremes(size)
        self._abs = RollingMean(size)

    def query(self, value: float) -> float:
        """The excess of ``value`` (0 inside the range or while the window is short)."""
        rng = self._range
        if rng.count < MIN_POINTS:
            return 0.0
        hi, lo = rng.max(), rng.min()
        outside = max(value - hi, lo - value, 0.0)
        if outside == 0.0:
            return 0.0
        return outside / (hi - lo + 1e-3 * self._abs.mean() + 1e-12)

    def push(self, value: float) -> None:
        """Take a value into the window."""
        self._range.push(value)
        self._abs.push(abs(value))


def seasonal_lags_within(period: int | None, lags: int, max_points: int) -> int:
    """How many of ``lags`` previous days of ``period`` points fit in ``max_points``."""
    if not period:
        return 0
    return max(0, min(lags, max_points // period))


class SeasonalResidual:
    """Deviation of a value from the same time of day on previous days.

    The prediction is the median of the values exactly ``k`` days earlier (``k = 1..lags``);
    the residual is scaled by the rolling median of past residuals (a robust spread) plus a
    hundredth of the recent range, so the feature reads as "robust sigmas off the profile".

    Args:
        period: Points per day.
        lags: How many previous days form the profile.
        scale_size: Points over which the residual spread and range are measured.
    """

    __slots__ = ("_n", "_range", "_ring", "_spread", "lags", "period")

    def __init__(self, period: int, lags: int, scale_size: int) -> None:
        self.period = period
        self.lags = lags
        # Ring buffer of the last lags * period values; _n counts every value pushed.
        self._ring = [math.nan] * (lags * period)
        self._n = 0
        self._spread = RollingMedian(scale_size)
        self._range = RollingExtremes(scale_size)

    def residual(self, value: float) -> float:
        """Absolute deviation from the seasonal profile, NaN while no day has been seen."""
        n, period, ring = self._n, self.period, self._ring
        size = len(ring)
        lagged = [ring[(n - k * period) % size] for k in range(1, self.lags + 1) if k * period <= n]
        if not lagged:
            return math.nan
        return abs(value - statistics.median(lagged))

    def score(self, residual: float) -> float:
        """The residual in robust units (0 while the spread is unknown)."""
        spread, rng = self._spread, self._range
        if math.isnan(residual) or spread.count < MIN_POINTS or rng.count < MIN_POINTS:
            return 0.0
        scale = 1.4826 * spread.median() + 0.01 * (rng.max() - rng.min())
        return residual / (scale + 1e-12)

    def push(self, value: float, residual: float) -> None:
        """Take a value (and the residual computed for it) into the state."""
        self._ring[self._n % len(self._ring)] = value
        self._n += 1
        self._spread.push(residual)
        self._range.push(value)


class RecordRatio:
    """Calibrates a feature against its own recent history.

    Returns ``r / (max of r over the previous size points + floor)``: values well above 1 mean
    "larger than anything seen lately", which means the same on every series whatever its
    units or noise level.

    Args:
        size: History length in points.
        floor: Added to the historic maximum, so a feature that was always zero does not
            turn every small value into an infinite ratio.
    """

    __slots__ = ("_max", "floor", "min_points")

    def __init__(self, size: int, floor: float) -> None:
        self._max = RollingMax(size)
        self.floor = floor
        self.min_points = min(50, size)

    def query(self, r: float) -> float:
        """The ratio for a new feature value (0 while the history is short)."""
        if self._max.count < self.min_points or r <= 0.0:
            return 0.0
        return r / (max(self._max.max(), 0.0) + self.floor)

    def push(self, r: float) -> None:
        """Take a feature value into the history."""
        self._max.push(r)


class PeakSuppressor:
    """Damps a score that does not beat the scores of the previous ``size`` points.

    After an alarm, the points that follow score lower unless they are even more anomalous, so
    one event raises one alarm rather than a burst of them.
    """

    __slots__ = ("_max", "factor")

    def __init__(self, size: int, factor: float) -> None:
        self._max = RollingMax(size)
        self.factor = factor

    def query(self, score: float) -> float:
        """The damped score."""
        previous = self._max.max() if self._max.count else 0.0
        if math.isnan(previous) or score > previous:
            return score
        return score * self.factor

    def push(self, score: float) -> None:
        """Take an undamped score into the history."""
        self._max.push(score)
