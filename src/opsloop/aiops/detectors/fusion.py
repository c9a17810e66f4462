"""Fusion: the default ensemble and CAD-OSE side by side, the more alarmed of the two wins.

The two see different things. The ensemble measures how far a value (or its smoothed level, or
its deviation from the same time on earlier days) falls outside its recent range: new highs and
lows, level shifts, broken daily patterns. CAD-OSE (:mod:`opsloop.aiops.detectors.cad`) learns
which sequences of quantised levels follow each other and scores a value whose context it
never saw: an unusual pattern inside the normal range. The fused score is the larger of the
ensemble's score and ``context_weight`` times CAD-OSE's, so CAD-OSE raises an alarm only when
it is close to certain (its raw score is near its maximum), and the ensemble's calibration
decides everything else.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.aiops.detectors.base import Detector
from opsloop.aiops.detectors.registry import DETECTORS, get_detector
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    import numpy.typing as npt

__all__ = ["FusionDetector"]


class FusionDetector(Detector):
    """The larger of two detectors' scores, the second scaled by ``context_weight``.

    Args:
        base: Registry name of the first detector (default: the ensemble).
        base_params: Its constructor parameters (default: its defaults).
        context: Registry name of the second detector (default: CAD-OSE).
        context_params: Its constructor parameters (default: its defaults).
        context_weight: Positive factor on the second detector's score (the fused score is
            capped at 1). With the
            corpus-wide thresholds NAB's profiles choose for the fused score (about 0.57 to
            0.62), 0.6 lets the second detector alarm only at its highest raw scores; 0.5
            or less silences it.
    """

    def __init__(
        self,
        *,
        base: str = "ensemble",
        base_params: dict[str, Any] | None = None,
        context: str = "cad",
        context_params: dict[str, Any] | None = None,
        context_weight: float = 0.6,
    ) -> None:
        if "fusion" in (base, context):
            raise AIOpsError("a fusion detector cannot contain another one")
        if not (math.isfinite(context_weight) and context_weight > 0.0):
            raise AIOpsError(f"context_weight must be a positive number, got {context_weight!r}")
        self.base = base
        self.base_params = dict(base_params) if base_params else None
        self.context = context
        self.context_params = dict(context_params) if context_params else None
        self.context_weight = float(context_weight)
        self._base = get_detector(base, **(self.base_params or {}))
        self._context = get_detector(context, **(self.context_params or {}))

    def hint(
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Pass the hints on to both detectors."""
        self._base.hint(value_range=value_range, probation=probation)
        self._context.hint(value_range=value_range, probation=probation)

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """The larger of the first detector's score and the weighted second one."""
        second = min(1.0, self.context_weight * self._context.score_one(x, t))
        return max(self._base.score_one(x, t), second)

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Learn ``x`` in both detectors."""
        self._base.learn_one(x, t)
        self._context.learn_one(x, t)

    def score_many(
        self,
        values: Iterable[float],
        timestamps: Iterable[datetime] | npt.NDArray[np.datetime64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Stream a whole series through both detectors (each its own fastest way), fused."""
        xs = [float(v) for v in values]
        ts = (
            timestamps
            if timestamps is None or isinstance(timestamps, np.ndarray)
            else list(timestamps)
        )
        first = self._base.score_many(xs, ts)
        second = self._context.score_many(xs, ts)
        return np.maximum(first, np.minimum(1.0, self.context_weight * second))


DETECTORS.register("fusion", FusionDetector)
