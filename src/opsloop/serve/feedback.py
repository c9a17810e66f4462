"""Feedback labels: which requests may get one, what a valid label is, how fast a client may
send them.

A label is only taken for a request this server answered (or, with a store sink, one the
store logged), once, and only when it fits the model: one of its classes for a classifier, a
finite number for a regressor. These are the checks that keep a client from poisoning the
labels the monitors compute model quality from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.errors import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.serve.base import ServableModel

__all__ = ["LABELLED", "ClientRateLimiter", "LabelSpec", "RecentRequests"]

_SHOWN_CLASSES = 10


class _Labelled:
    """The marker of a request that got its label."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LABELLED"


LABELLED = _Labelled()


def _key(value: Any) -> tuple[str, Any] | None:
    """A comparable key of a scalar label (1 and 1.0 are the same class, True is not 1), or
    None when the value is no scalar label at all."""
    if isinstance(value, np.generic):
        value = value.item()
    kind = type(value)
    if kind is bool:
        return ("b", value)
    if kind is int:
        return ("n", value)
    if kind is float:
        return ("n", value) if math.isfinite(value) else None
    if kind is str:
        return ("s", value)
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What a label of one model version must look like.

    Attributes:
        model: Model name.
        version: Model version.
        classes: The classifier's class labels; None for other models.
        outputs: Columns of a 2-D output when the model names no classes (the label is then
            a column index); None otherwise.
        known: False when the version is not known to this server (loaded before a restart):
            then any finite scalar is taken.
    """

    model: str
    version: str
    classes: tuple[Any, ...] | None = None
    outputs: int | None = None
    known: bool = True

    @classmethod
    def for_model(cls, model: ServableModel, output_shape: Sequence[int]) -> LabelSpec:
        """The spec of a loaded model, from its ``classes`` and the shape of its output."""
        raw = getattr(model, "classes", None)
        classes = (
            None
            if raw is None
            else tuple(v.item() if isinstance(v, np.generic) else v for v in list(raw))
        )
        outputs = output_shape[1] if classes is None and len(output_shape) == 2 else None
        return cls(model.name, str(model.version), classes, outputs)

    @classmethod
    def unknown(cls, model: str, version: str) -> LabelSpec:
        """The spec of a version this server never loaded."""
        return cls(model, version, known=False)

    @property
    def _keys(self) -> frozenset[tuple[str, Any]]:
        # Small and only built for feedback (never on the inference path).
        return frozenset(k for k in map(_key, self.classes or ()) if k is not None)

    def check(self, label: Any, rows: int, where: str = "") -> None:
        """Refuse a label that does not fit this model or the request's rows.

        A request of one row takes one label (or a list of one); a request of ``n`` rows takes
        a list of ``n`` labels, one per row.

        Raises:
            InvalidRequestError: The label names the field ``label{where}``.
        """
        field = f"label{where}"
        name = f"feedback{where}.label"
        if isinstance(label, list):
            if len(label) != rows:
                raise InvalidRequestError(
                    f"{name}: {len(label)} labels for a request of {rows} row(s); send one "
                    "label per row",
                    field=field,
                )
            values = label
        elif rows != 1:
            raise InvalidRequestError(
                f"{name}: the request had {rows} rows; send a list of {rows} labels, one per row",
                field=field,
            )
        else:
            values = [label]
        keys = self._keys if self.classes is not None else None
        for value in values:
            self._check_one(value, keys, name, field)

    def _check_one(
        self, value: Any, keys: frozenset[tuple[str, Any]] | None, name: str, field: str
    ) -> None:
        key = _key(value)
        what = f"model '{self.model}' version '{self.version}'"
        if keys is not None:
            if key is None or key not in keys:
                classes = list(self.classes or ())
                shown = ", ".join(map(repr, classes[:_SHOWN_CLASSES]))
                more = f", … ({len(classes)} classes)" if len(classes) > _SHOWN_CLASSES else ""
                raise InvalidRequestError(
                    f"{name}: {_shown(value)} is not a class of {what}; its classes are "
                    f"[{shown}{more}]",
                    field=field,
                )
            return
        if self.outputs is not None:
            if key is None or key[0] != "n" or type(value) is not int:
                raise InvalidRequestError(
                    f"{name}: expected the index of an output column (0 to {self.outputs - 1}) "
                    f"of {what}, got {_shown(value)}",
                    field=field,
                )
            if not 0 <= value < self.outputs:
                raise InvalidRequestError(
                    f"{name}: {value} is not an output column of {what} (0 to {self.outputs - 1})",
                    field=field,
                )
            return
        if not self.known:
            if key is None:
                raise InvalidRequestError(
                    f"{name}: expected a class or a finite number, got {_shown(value)}",
                    field=field,
                )
            return
        if key is None or key[0] != "n":
            raise InvalidRequestError(
                f"{name}: {what} predicts numbers; expected a finite number, got {_shown(value)}",
                field=field,
            )


class RecentRequests:
    """The request ids a server answered lately: id → ``(LabelSpec, rows)`` or
    :data:`LABELLED`.

    Two generations of plain dicts: when the newer fills, it becomes the older and the
    older is dropped. That bounds memory at ``size`` ids with O(1) work per request and no
    lock (only the event loop touches it), at the price of forgetting up to half of the
    ids at once, oldest first.

    Args:
        size: Most ids remembered.
    """

    __slots__ = ("_half", "_new", "_old")

    def __init__(self, size: int) -> None:
        self._half = max(1, size // 2)
        self._new: dict[str, Any] = {}
        self._old: dict[str, Any] = {}

    def add(self, request_id: str, target: tuple[LabelSpec, int]) -> None:
        """Remember an answered request."""
        new = self._new
        new[request_id] = target
        if len(new) >= self._half:
            self._old = new
            self._new = {}

    def get(self, request_id: str) -> tuple[LabelSpec, int] | _Labelled | None:
        """What is known of ``request_id``, None when it is not remembered."""
        found = self._new.get(request_id)
        if found is None:
            found = self._old.get(request_id)
        return found

    def mark_labelled(self, request_id: str) -> None:
        """Remember that ``request_id`` got its label."""
        self._old.pop(request_id, None)
        new = self._new
        new[request_id] = LABELLED
        if len(new) >= self._half:
            self._old = new
            self._new = {}

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


class ClientRateLimiter:
    """A token bucket per client address: ``rate`` tokens a second, at most ``burst``.

    Args:
        rate: Tokens added per second.
        burst: Most tokens a bucket holds (the largest cost ever granted at once).
        max_clients: Most buckets kept; beyond, full (idle) buckets go first, then the
            oldest, so many addresses cannot grow the table without end.
    """

    def __init__(self, rate: float, burst: float, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}

    def take(self, client: str, cost: float, now: float) -> float:
        """Take ``cost`` tokens from ``client``'s bucket.

        Returns:
            0.0 when they were taken, else the seconds until the bucket holds ``cost``
            (nothing is taken then).
        """
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._prune(now)
            bucket = self._buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= cost:
            bucket[0] = tokens - cost
            return 0.0
        bucket[0] = tokens
        return (cost - tokens) / self.rate if self.rate > 0 else math.inf

    def _prune(self, now: float) -> None:
        buckets = self._buckets
        idle = [c for c, (t, at) in buckets.items() if t + (now - at) * self.rate >= self.burst]
        for client in idle:
            del buckets[client]
        if len(buckets) >= self.max_clients:
            for client in list(buckets)[: len(buckets) // 2 + 1]:
                del buckets[client]
