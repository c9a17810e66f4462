"""Detectors that place each value within its series' range (CAD-OSE's bits, ARTime's levels).

NAB tells every detector a file's minimum and maximum before it starts
(:meth:`~opsloop.aiops.detectors.base.Detector.hint`); the monitoring loop cannot. Without the
hint such a detector holds its first points back, fixes the range on them, and then learns them
in order, so the points after the warm-up are scored as with a hint of that range.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import TYPE_CHECKING

from opsloop.aiops.detectors.base import Detector, is_missing

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["RangedDetector"]


class RangedDetector(Detector):
    """A detector whose range comes from a hint or from its first points.

    Subclasses keep ``_lo`` (None until the range is known), ``_warmup`` (the points held
    back) and ``_n`` (points learnt), and define how a range is set, how long the warm-up is
    and how one point is learnt once the range is known.
    """

    _lo: float | None
    _warmup: list[float]
    _n: int

    @abstractmethod
    def _set_range(self, lo: float, hi: float) -> None:
        """Fix the range values are placed in."""

    @abstractmethod
    def _warmup_length(self) -> int:
        """Points held back to fix the range when no hint gave it."""

    @abstractmethod
    def _learn(self, x: float) -> None:
        """Learn one finite point once the range is known."""

    def _range_fixed(self) -> None:
        """Called once the warm-up has fixed the range, before its points are learnt."""

    def _fresh(self) -> bool:
        """Whether the detector has seen nothing yet (only a fresh one takes hints)."""
        return not (self._n or self._warmup)

    def _hint_range(self, value_range: tuple[float, float] | None) -> None:
        """Set the hinted range, when it is a finite, ordered pair."""
        if value_range is None:
            return
        lo, hi = (float(v) for v in value_range)
        if math.isfinite(lo) and math.isfinite(hi) and hi >= lo:
            self._set_range(lo, hi)

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Learn ``x``; without a range yet, hold it back until the warm-up fixes one."""
        if is_missing(x):
            return
        if self._lo is not None:
            self._learn(x)
            return
        self._warmup.append(x)
        if len(self._warmup) < max(1, self._warmup_length()):
            return
        points, self._warmup = self._warmup, []
        self._set_range(min(points), max(points))
        self._range_fixed()
        for p in points:
            self._learn(p)
