"""Kolmogorov-Smirnov and Wasserstein-1 distances against a large sorted sample.

scipy computes the same statistics (``scipy.stats.ks_2samp`` and
``scipy.stats.wasserstein_distance``) by merging both samples and evaluating both empirical
CDFs at every merged point. A drift check compares a small sorted reference sample (``a``,
``k`` points) with a large current window (``b``, ``m`` points). Written by hand because no
library offers the cheap form: once ``b`` is sorted and its prefix sums are known, both
statistics follow from ``O(k log m)`` work, so the window is touched only by one sort, one
subtraction and one cumulative sum.

Why that is exact: between two consecutive points of ``a`` the CDF ``F_a`` is a constant
``h`` while ``F_b`` rises; ``|h - F_b|`` is therefore largest at the ends of that stretch (KS),
and its integral splits at the order statistic of ``b`` where ``F_b`` reaches ``h``. The
integral of ``F_b`` over any interval ``[p, q]`` is
``(N(p)(q - p) + sum over b in (p, q] of (q - b)) / m`` with ``N(x) = #{b <= x}``, which the
prefix sums give in constant time (Wasserstein).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class SortedWindow:
    """A sorted sample with the prefix sums needed by :func:`ks_wasserstein`.

    Values are shifted by ``center`` before summing so that the prefix sums stay close to
    the spread of the data, not its magnitude; this keeps the Wasserstein distance accurate
    to about 1e-9 of the spread even for a million points.

    Args:
        values: Finite values, sorted ascending, at least one.
        center: Shift applied before summing; any value near the data works.
    """

    __slots__ = ("center", "m", "prefix", "sum_sq", "values")

    def __init__(self, values: FloatArray, center: float) -> None:
        self.values = values
        self.m = int(values.size)
        self.center = float(center)
        prefix = np.empty(self.m + 1, dtype=np.float64)
        prefix[0] = 0.0
        shifted = prefix[1:]
        np.subtract(values, self.center, out=shifted)
        # einsum, not np.dot: a BLAS dot spins up its thread pool, which costs more than the
        # sum itself on a busy machine.
        self.sum_sq = float(np.einsum("i,i->", shifted, shifted))
        np.cumsum(shifted, out=shifted)
        self.prefix = prefix

    @property
    def mean(self) -> float:
        """Arithmetic mean of the window."""
        return self.center + float(self.prefix[-1]) / self.m

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``) of the window."""
        mean_shift = float(self.prefix[-1]) / self.m
        return float(np.sqrt(max(self.sum_sq / self.m - mean_shift * mean_shift, 0.0)))

    def count_le(self, points: FloatArray) -> IntArray:
        """Number of window values ``<= points`` (element-wise)."""
        return np.searchsorted(self.values, points, side="right").astype(np.int64)

    def count_lt(self, points: FloatArray) -> IntArray:
        """Number of window values ``< points`` (element-wise)."""
        return np.searchsorted(self.values, points, side="left").astype(np.int64)


def ks_wasserstein(
    a_sorted: FloatArray, window: SortedWindow, a_cumcounts: IntArray | None = None
) -> tuple[float, float]:
    """Two-sample KS statistic and Wasserstein-1 distance, exactly.

    Args:
        a_sorted: The first sample, finite, sorted ascending, at least one point.
        window: The second sample.
        a_cumcounts: How many observations ``a_sorted[: i + 1]`` stand for, for a weighted
            (compressed) first sample; ``None`` when every point stands for one.

    Returns:
        ``(ks, wasserstein)``: the largest gap between the two empirical CDFs, and the area
        between them.
    """
    k = int(a_sorted.size)
    cum = np.arange(1, k + 1, dtype=np.int64) if a_cumcounts is None else a_cumcounts
    n_a = int(cum[-1])
    m = window.m
    b = window.values
    prefix = window.prefix

    n_le = window.count_le(a_sorted)
    n_lt = window.count_lt(a_sorted)
    # F_a at each point and just before it; tied points share the CDF after the whole run.
    a_le = np.searchsorted(a_sorted, a_sorted, side="right")
    a_lt = np.searchsorted(a_sorted, a_sorted, side="left")
    cum0 = np.concatenate(([0], cum))
    ks = max(
        float(np.max(np.abs(cum0[a_le] / n_a - n_le / m))),
        float(np.max(np.abs(cum0[a_lt] / n_a - n_lt / m))),
    )

    a = a_sorted - window.center
    # Left of a[0] F_a = 0; right of a[-1] F_a = 1.
    total = (n_le[0] * a[0] - prefix[n_le[0]]) / m
    total += ((prefix[m] - prefix[n_le[-1]]) - (m - n_le[-1]) * a[-1]) / m
    if k > 1:
        p, q = a[:-1], a[1:]
        n_p, n_q = n_le[:-1], n_le[1:]
        c = cum[:-1]
        # F_a = h = c / n_a between a[i] and a[i + 1]; F_b first reaches h at the order
        # statistic b[j - 1] with j = ceil(c m / n_a), in integers to stay exact.
        j = (c * m + n_a - 1) // n_a
        t = b[j - 1] - window.center
        below = t <= p
        above = t >= q
        t = np.where(below, p, np.where(above, q, t))
        n_t = np.where(below, n_p, np.where(above, n_q, j))
        h = c / n_a

        def area_under_b(
            lo: FloatArray, n_lo: IntArray, hi: FloatArray, n_hi: IntArray
        ) -> FloatArray:
            # m times the integral of F_b over [lo, hi].
            inner: FloatArray = (n_hi - n_lo) * hi - (prefix[n_hi] - prefix[n_lo])
            return n_lo * (hi - lo) + inner

        rising = h * (t - p) - area_under_b(p, n_p, t, n_t) / m
        falling = area_under_b(t, n_t, q, n_q) / m - h * (q - t)
        total += float(np.sum(rising) + np.sum(falling))
    return ks, float(total)
