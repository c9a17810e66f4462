"""The contract every streaming anomaly detector follows.

A detector sees a metric series one point at a time::

    score = detector.score_one(x, t)   # how anomalous is x, given everything learnt so far
    detector.learn_one(x, t)           # now take x into account

``score_one`` never changes the detector, so a point can be scored without learning from it
(for example to keep an incident's points out of the model). Scores lie in [0, 1]; a NaN or
infinite value scores 0 and is not learnt. Constructor parameters are stored under their own
names, so :meth:`Detector.get_params` and :meth:`Detector.clone` work for every detector
without extra code.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["Detector", "Timestamp", "to_seconds"]

Timestamp = datetime | None

_EPOCH = datetime(1970, 1, 1)


def to_seconds(t: Timestamp) -> float | None:
    """Seconds since the epoch of a timestamp (naive timestamps are taken as UTC).

    Naive timestamps are not passed through the local time zone, so daylight-saving changes
    on the machine running the detector cannot bend the series' spacing.
    """
    if t is None:
        return None
    if t.tzinfo is None:
        return (t - _EPOCH).total_seconds()
    return (t.astimezone(UTC).replace(tzinfo=None) - _EPOCH).total_seconds()


def is_missing(x: float) -> bool:
    """Whether a value cannot be learnt from (NaN or infinite)."""
    return not math.isfinite(x)


class Detector(ABC):
    """A streaming anomaly detector (River-style ``learn_one`` / ``score_one``).

    Attributes:
        alert_threshold: The score from which a point is anomalous when nobody says otherwise:
            the one corpus-wide threshold that NAB's standard profile chooses for this
            detector, with its default settings, on the development subset, run as the
            monitoring loop runs it (no hints). Alert rules and cost anomalies use it unless
            they set their own, so the loop alerts at the operating point the benchmark
            measures (0.75 for a detector that does not set it).
    """

    alert_threshold: ClassVar[float] = 0.75

    @abstractmethod
    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Update the detector with one observation.

        Args:
            x: The observed value.
            t: When it was observed; detectors that model time use it, others ignore it.
        """

    @abstractmethod
    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of one observation, without learning from it.

        Args:
            x: The observed value.
            t: When it was observed.

        Returns:
            A score in [0, 1]; higher is more anomalous.
        """

    def hint(  # noqa: B027 - an optional hook, deliberately a no-op by default
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Tell a fresh detector what is known about its series before it starts.

        A benchmark that hands every detector the same facts calls this on each fresh
        detector (the NAB benchmark passes each file's minimum and maximum and its
        probationary length, as NAB does); the monitoring loop does not, so a detector must
        work without it. Most detectors ignore it.

        Args:
            value_range: Lowest and highest value the series will take.
            probation: Leading points that are never judged (warm-up).
        """

    def score_learn_one(self, x: float, t: datetime | None = None) -> float:
        """Score an observation, then learn from it (the usual streaming step)."""
        score = self.score_one(x, t)
        self.learn_one(x, t)
        return score

    def score_many(
        self,
        values: Iterable[float],
        timestamps: Iterable[datetime] | npt.NDArray[np.datetime64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Score and learn a whole series in order, as a stream.

        Args:
            values: The series' values.
            timestamps: One timestamp per value (datetimes or ``datetime64``), or None.

        Returns:
            One score per value.
        """
        xs = [float(v) for v in values]
        ts: Sequence[datetime | None]
        if timestamps is None:
            ts = [None] * len(xs)
        elif isinstance(timestamps, np.ndarray):
            ts = timestamps.astype("datetime64[us]").tolist()
        else:
            ts = list(timestamps)
        if len(ts) != len(xs):
            raise AIOpsError(f"{len(xs)} values but {len(ts)} timestamps")
        step = self.score_learn_one
        return np.fromiter((step(x, t) for x, t in zip(xs, ts, strict=True)), np.float64, len(xs))

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, read from the attributes of the same names."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self, **overrides: Any) -> Self:
        """A fresh, untrained detector with the same parameters (optionally changed).

        Raises:
            AIOpsError: An override names a parameter the detector does not have.
        """
        params = self.get_params()
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise AIOpsError(
                f"{type(self).__name__} has no parameter {unknown[0]!r}; "
                f"parameters: {', '.join(params) or 'none'}"
            )
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
