"""Bounded rolling-window statistics for streaming detectors.

Every structure holds at most ``size`` values, so a detector built from them keeps a fixed
amount of state however long the stream runs. Values are pushed one at a time; queries look at
the window as it stands (callers query before pushing to get "previous points only").

These are hand-written rather than taken from pandas or numpy because a streaming detector
sees one point at a time and must answer in O(1) or O(log n) per point.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

__all__ = ["RollingExtremes", "RollingMax", "RollingMean", "RollingMedian"]


class RollingMax:
    """Maximum of the last ``size`` finite values (monotonic deque, O(1) amortised)."""

    __slots__ = ("_items", "_n", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._n = 0
        # (position, value) pairs with decreasing values; the front is the window's maximum.
        self._items: deque[tuple[int, float]] = deque()

    def push(self, value: float) -> None:
        """Append a value (NaN takes a slot but never becomes the maximum)."""
        pos = self._n
        self._n += 1
        if not math.isnan(value):
            items = self._items
            while items and items[-1][1] <= value:
                items.pop()
            items.append((pos, value))
        self._expire()

    def _expire(self) -> None:
        first = self._n - self.size
        items = self._items
        while items and items[0][0] < first:
            items.popleft()

    @property
    def count(self) -> int:
        """Slots filled so far, capped at ``size``."""
        return min(self._n, self.size)

    def max(self) -> float:
        """The maximum, or NaN when the window holds no finite value."""
        return self._items[0][1] if self._items else math.nan


class RollingExtremes:
    """Maximum, minimum and count of finite values over the last ``size`` pushes."""

    __slots__ = ("_finite", "_hi", "_lo", "_n", "_n_finite", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._n = 0
        self._hi: deque[tuple[int, float]] = deque()
        self._lo: deque[tuple[int, float]] = deque()
        # One flag per slot in the window: whether its value was finite.
        self._finite: deque[bool] = deque()
        self._n_finite = 0

    def push(self, value: float) -> None:
        """Append a value (NaN takes a slot but is ignored by the statistics)."""
        pos = self._n
        self._n += 1
        finite = not math.isnan(value)
        if finite:
            hi, lo = self._hi, self._lo
            while hi and hi[-1][1] <= value:
                hi.pop()
            hi.append((pos, value))
            while lo and lo[-1][1] >= value:
                lo.pop()
            lo.append((pos, value))
        self._finite.append(finite)
        self._n_finite += finite
        if len(self._finite) > self.size:
            self._n_finite -= self._finite.popleft()
        first = self._n - self.size
        for items in (self._hi, self._lo):
            while items and items[0][0] < first:
                items.popleft()

    @property
    def count(self) -> int:
        """Finite values in the window."""
        return self._n_finite

    def max(self) -> float:
        """The maximum, or NaN for an empty window."""
        return self._hi[0][1] if self._hi else math.nan

    def min(self) -> float:
        """The minimum, or NaN for an empty window."""
        return self._lo[0][1] if self._lo else math.nan


class RollingMedian:
    """Median of the finite values among the last ``size`` pushes (sorted list)."""

    __slots__ = ("_sorted", "_window", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._window: deque[float] = deque()
        self._sorted: list[float] = []

    def push(self, value: float) -> None:
        """Append a value (NaN takes a slot but is left out of the median)."""
        self._window.append(value)
        if not math.isnan(value):
            insort(self._sorted, value)
        if len(self._window) > self.size:
            old = self._window.popleft()
            if not math.isnan(old):
                del self._sorted[bisect_left(self._sorted, old)]

    @property
    def count(self) -> int:
        """Finite values in the window."""
        return len(self._sorted)

    def median(self) -> float:
        """The median (mean of the middle two for an even count), or NaN when empty."""
        values = self._sorted
        n = len(values)
        if n == 0:
            return math.nan
        mid = n // 2
        if n % 2:
            return values[mid]
        return (values[mid - 1] + values[mid]) / 2.0


class RollingMean:
    """Mean of the last ``size`` values (all finite)."""

    __slots__ = ("_pushes", "_sum", "_window", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._pushes = 0

    def push(self, value: float) -> None:
        """Append a value."""
        self._window.append(value)
        self._sum += value
        if len(self._window) > self.size:
            self._sum -= self._window.popleft()
        self._pushes += 1
        # A running sum drifts by rounding; recomputing it now and then keeps it exact enough
        # on arbitrarily long streams at an amortised O(1) cost.
        if self._pushes % max(self.size, 1024) == 0:
            self._pushes = 0
            self._sum = math.fsum(self._window)

    @property
    def count(self) -> int:
        """Values in the window."""
        return len(self._window)

    def mean(self) -> float:
        """The mean, or NaN when empty."""
        return self._sum / len(self._window) if self._window else math.nan

    def mean_with(self, value: float) -> float:
        """The mean the window would have after pushing ``value`` (without pushing it)."""
        n = len(self._window)
        if n < self.size:
            return (self._sum + value) / (n + 1)
        return (self._sum - self._window[0] + value) / n
