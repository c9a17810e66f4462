"""Shared plumbing for detectors whose windows are sized in days."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from opsloop.aiops.detectors._parts import Clock
from opsloop.aiops.detectors.base import Detector, is_missing, to_seconds

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["ClockedDetector"]


class ClockedDetector(Detector):
    """A detector that learns the points-per-day of its series before it builds its state.

    The first ``infer_points`` points are held back (and score 0) while the sampling step is
    inferred from their timestamps; then the state is built and those points are replayed.
    With ``period`` given, or without timestamps, the state is built at once.

    Subclasses implement :meth:`_build`, :meth:`_features` (a pure function of the state and
    the new value) and :meth:`_commit` (push the value and its features).
    """

    def _init_clock(self, period: int | None, infer_points: int) -> None:
        self._clock = Clock(period, infer_points)
        self._held: list[float] = []
        self._version = 0
        self._cache: tuple[float, int, Any] | None = None
        if self._clock.decided:
            self._build(self._clock.points_per_day)

    @property
    def points_per_day(self) -> int | None:
        """Points per day, once known (None before, or for series without timestamps)."""
        return self._clock.points_per_day if self._clock.decided else None

    @abstractmethod
    def _build(self, points_per_day: int | None) -> None:
        """Create the state for a series with that many points per day (None: unknown)."""

    @abstractmethod
    def _features(self, x: float) -> Any:
        """Everything the score and the update of ``x`` need, without changing state."""

    @abstractmethod
    def _score(self, features: Any) -> float:
        """The score from the features."""

    @abstractmethod
    def _commit(self, x: float, features: Any) -> None:
        """Push ``x`` and its features into the state."""

    def _features_cached(self, x: float) -> Any:
        cache = self._cache
        if cache is not None and cache[1] == self._version and cache[0] == x:
            return cache[2]
        features = self._features(x)
        self._cache = (x, self._version, features)
        return features

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x`` (0 while the sampling step is being inferred)."""
        if is_missing(x) or not self._clock.decided:
            return 0.0
        return self._score(self._features_cached(x))

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Take ``x`` into the state."""
        if is_missing(x):
            return
        clock = self._clock
        if not clock.decided:
            clock.feed(to_seconds(t))
            self._held.append(x)
            if clock.decided:
                self._build(clock.points_per_day)
                held, self._held = self._held, []
                for value in held:
                    self._learn(value)
            return
        self._learn(x)

    def _learn(self, x: float) -> None:
        features = self._features_cached(x)
        self._commit(x, features)
        self._version += 1
        self._cache = None
