"""The ensemble and ARTime together: each point scores the larger of their two scores.

The two see different things. The ensemble scores every point by how far it falls outside
recent ranges and daily profiles, calibrated per series; ARTime scores only the points that
end a window of shapes its categories have not learnt, and scores them high. Taking the
larger score keeps both kinds of evidence, and under leave-one-category-out on NAB the pair
generalises better than either part (see the README's NAB section).

Hints go to both parts (only ARTime uses them). Without hints ARTime holds back
``warmup_points`` points, as its probationary period and the source of its range; the
default, 750, is ARTime's own probation for a long series. The standalone ``artime``
detector takes 150 so that it judges every point; here the ensemble does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from opsloop.aiops.detectors.artime import ARTimeDetector
from opsloop.aiops.detectors.base import Detector
from opsloop.aiops.detectors.ensemble import EnsembleDetector

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["FusedDetector"]


class FusedDetector(Detector):
    """The larger of the default ensemble's and ARTime's scores.

    Args:
        warmup_points: ARTime's probationary length (and range warm-up) without hints.
    """

    alert_threshold: ClassVar[float] = 0.602

    def __init__(self, *, warmup_points: int = 750) -> None:
        self.warmup_points = warmup_points
        self._ensemble = EnsembleDetector()
        self._artime = ARTimeDetector(warmup_points=warmup_points)

    def hint(
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Pass the hints on to both parts."""
        self._ensemble.hint(value_range=value_range, probation=probation)
        self._artime.hint(value_range=value_range, probation=probation)

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """The larger of the two parts' scores of ``x``."""
        return max(self._ensemble.score_one(x, t), self._artime.score_one(x, t))

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Both parts learn ``x``."""
        self._ensemble.learn_one(x, t)
        self._artime.learn_one(x, t)
