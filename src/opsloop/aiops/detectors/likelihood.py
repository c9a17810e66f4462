"""Anomaly likelihood: any detector's raw scores turned into how unusual they are for the series.

This is the step that makes HTM's threshold portable across series (Ahmad et al., 2017): a
raw score means different things on a noisy series and on a calm one, so instead of the raw
score the detector reports how far the short-term average of the raw scores lies in the upper
tail of their own long-term distribution (a normal fit), on a log scale where 0.5 is a tail
probability of ``10**-5``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from opsloop.aiops.detectors.base import Detector, is_missing
from opsloop.aiops.detectors.registry import DETECTORS, get_detector
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["LikelihoodDetector", "log_tail_score"]

# Tail probability that maps to a score of 1 (and its log): 1e-10, as in HTM's log scale.
_LOG_FLOOR = math.log(1e-10)


def log_tail_score(tail: float) -> float:
    """Map an upper-tail probability to [0, 1] on a log scale (1e-5 -> 0.5, 1e-10 -> 1)."""
    if tail >= 1.0:
        return 0.0
    return min(1.0, math.log(max(tail, 1e-300)) / _LOG_FLOOR)


class LikelihoodDetector(Detector):
    """Wraps a detector and reports the likelihood of its raw scores instead of the scores.

    Args:
        base: Registry name of the wrapped detector.
        base_params: Its constructor parameters (default: its defaults).
        short_window: Raw scores averaged into the value tested.
        long_window: Averaged scores the normal fit is taken over (bounds memory).
        learning_points: Points learnt before anything scores above 0.
        mean_floor: Lower bound of the fitted mean, so a series whose raw scores were all 0
            does not make the first small raw score infinitely unlikely.
        std_floor: Lower bound of the fitted standard deviation, for the same reason.
    """

    alert_threshold: ClassVar[float] = 0.821

    def __init__(
        self,
        *,
        base: str = "ensemble",
        base_params: dict[str, Any] | None = None,
        short_window: int = 1,
        long_window: int = 4000,
        learning_points: int = 300,
        mean_floor: float = 0.03,
        std_floor: float = 0.0175,
    ) -> None:
        if base == "likelihood":
            raise AIOpsError("a likelihood detector cannot wrap another one")
        self.base = base
        self.base_params = dict(base_params) if base_params else None
        self.short_window = short_window
        self.long_window = long_window
        self.learning_points = learning_points
        self.mean_floor = mean_floor
        self.std_floor = std_floor
        self._base = get_detector(base, **(self.base_params or {}))
        self._short: deque[float] = deque(maxlen=max(1, short_window))
        self._short_sum = 0.0
        self._long: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0
        self._n = 0

    def _averaged(self, raw: float) -> float:
        short = self._short
        n = len(short)
        if n < short.maxlen:  # type: ignore[operator]
            return (self._short_sum + raw) / (n + 1)
        return (self._short_sum - short[0] + raw) / n

    def _score_raw(self, raw: float) -> float:
        if self._n < self.learning_points or not self._long:
            return 0.0
        avg = self._averaged(raw)
        n = len(self._long)
        mean = self._sum / n
        var = max(self._sum_sq / n - mean * mean, 0.0)
        mean = max(mean, self.mean_floor)
        std = max(math.sqrt(var), self.std_floor)
        if avg <= mean:
            return 0.0
        tail = 0.5 * math.erfc((avg - mean) / (std * math.sqrt(2.0)))
        return log_tail_score(tail)

    def hint(
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Pass the hints on to the wrapped detector."""
        self._base.hint(value_range=value_range, probation=probation)

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Likelihood score of ``x``'s raw score under the series' raw-score distribution."""
        if is_missing(x):
            return 0.0
        return self._score_raw(self._base.score_one(x, t))

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Learn ``x`` in the wrapped detector and its raw score in the distribution."""
        if is_missing(x):
            return
        raw = self._base.score_one(x, t)
        self._base.learn_one(x, t)
        avg = self._averaged(raw)
        short = self._short
        if len(short) == short.maxlen:
            self._short_sum -= short[0]
        short.append(raw)
        self._short_sum = math.fsum(short) if self._n % 1024 == 0 else self._short_sum + raw
        self._long.append(avg)
        self._sum += avg
        self._sum_sq += avg * avg
        if len(self._long) > self.long_window:
            old = self._long.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        if self._n % 4096 == 0:
            # Running sums drift by rounding; a periodic exact recount keeps them honest.
            self._sum = math.fsum(self._long)
            self._sum_sq = math.fsum(v * v for v in self._long)
        self._n += 1


DETECTORS.register("likelihood", LikelihoodDetector)
