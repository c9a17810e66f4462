"""Contextual anomaly detection: how well the preceding facts predicted the present ones.

The idea follows the Contextual Anomaly Detector (CAD, Smirnov 2016): each point becomes a
small set of *facts* (the bits of its quantised value), and the detector remembers *contexts*,
pairs of "the facts just before" and "the facts now". A point is anomalous when the contexts
that the preceding facts select mostly fail to match the present facts, or when the present
context has never been seen. Unlike the original, this one is strictly streaming and bounded:

* values are quantised against the range of the points learnt so far (the original is given
  the whole file's minimum and maximum, which a live monitor cannot know);
* the left side of a context is the facts of the last 1 .. ``max_order`` points (a
  variable-order memory in place of the original's recursive "neuron" facts);
* contexts live in a least-recently-used table of at most ``max_contexts`` entries.

Like the original, a raw score at or above ``base_threshold`` silences the scores of the next
``rest_points`` points, so one event raises one alarm.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, ClassVar

from opsloop.aiops.detectors.base import Detector, is_missing

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["ContextDetector"]

Facts = tuple[int, ...]

# Times a left side's contexts are counted before their counts are halved.
_MAX_COUNT = 250


class ContextDetector(Detector):
    """Anomaly score from the failure of learnt contexts to predict the present facts.

    Args:
        value_bits: Bits the value is quantised to (``2**value_bits`` levels over the range
            learnt so far); each bit is one fact.
        max_order: Longest run of preceding points a context's left side covers.
        resolutions: Resolutions contexts are kept at: the finest, then each time one bit
            coarser (CAD's partial contexts, which let a coarse expectation fail loudly).
        max_contexts: Contexts remembered (least recently used ones are forgotten).
        rest_points: Points whose scores are silenced after a raw score of ``base_threshold``.
        base_threshold: Raw score that starts a rest period.
        min_points: Points learnt before anything scores above 0.
    """

    alert_threshold: ClassVar[float] = 0.757

    def __init__(
        self,
        *,
        value_bits: int = 3,
        max_order: int = 3,
        resolutions: int = 1,
        max_contexts: int = 400,
        rest_points: int = 30,
        base_threshold: float = 0.75,
        min_points: int = 30,
    ) -> None:
        self.value_bits = value_bits
        self.max_order = max_order
        self.resolutions = resolutions
        self.max_contexts = max_contexts
        self.rest_points = rest_points
        self.base_threshold = base_threshold
        self.min_points = min_points
        self._n = 0
        self._lo = math.inf
        self._hi = -math.inf
        # Facts of the latest max_order points, newest last.
        self._past: deque[Facts] = deque(maxlen=max(1, max_order))
        # Every (left facts, right facts) context, least recently seen first.
        self._contexts: OrderedDict[tuple[tuple[Facts, ...], Facts], bool] = OrderedDict()
        # left facts -> {right facts: times seen}, the contexts a left side selects.
        self._by_left: dict[tuple[Facts, ...], dict[Facts, int]] = {}
        # Raw scores of the latest rest_points points.
        self._recent: deque[float] = deque(maxlen=max(1, rest_points))
        self._cache: tuple[float, int, float] | None = None

    def _facts(self, x: float) -> Facts:
        levels = (1 << self.value_bits) - 1
        span = self._hi - self._lo
        if span <= 0.0:
            # Nothing but one value so far: it is level 0, anything else is a new extreme.
            level = 0 if x == self._lo else (-1 if x < self._lo else levels + 1)
        else:
            level = math.floor((x - self._lo) / span * levels)
        if level < 0:
            return (-1,)
        # A value above the range learnt so far sets bits beyond value_bits: facts never seen.
        bits = max(self.value_bits, level.bit_length())
        return tuple(2 * i + ((level >> i) & 1) for i in range(bits))

    def _pairs(self, facts: Facts) -> list[tuple[tuple[Facts, ...], Facts]]:
        """(left, right) of every context of the present point: per resolution (dropping the
        ``c`` lowest bits) and per order (the last ``k`` points)."""
        past = list(self._past)
        out: list[tuple[tuple[Facts, ...], Facts]] = []
        for c in range(max(1, min(self.resolutions, self.value_bits))):
            coarse = [f[c:] for f in past]
            out.extend((((c,), *coarse[-k:]), facts[c:]) for k in range(1, len(coarse) + 1))
        return out

    def _raw(self, x: float) -> float:
        pairs = self._pairs(self._facts(x))
        if not pairs:
            return 0.0
        selected = matched = 0
        new = 0
        for left, right in pairs:
            rights = self._by_left.get(left)
            if not rights:
                new += 1
                continue
            total = sum(rights.values())
            selected += total
            seen = rights.get(right, 0)
            matched += seen
            if not seen:
                new += 1
        active = matched / selected if selected else 0.0
        return (1.0 - active + new / len(pairs)) / 2.0

    def _raw_cached(self, x: float) -> float:
        cache = self._cache
        if cache is not None and cache[0] == x and cache[1] == self._n:
            return cache[2]
        raw = self._raw(x)
        self._cache = (x, self._n, raw)
        return raw

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x`` given the contexts learnt so far."""
        if is_missing(x) or self._n < self.min_points:
            return 0.0
        if self._hi == self._lo and x == self._lo:
            return 0.0
        raw = self._raw_cached(x)
        if self.rest_points > 0 and self._recent and max(self._recent) >= self.base_threshold:
            return 0.0
        return min(1.0, max(0.0, raw))

    def learn_one(self, x: float, t: datetime | None = None) -> None:
        """Remember the context of ``x`` and move on."""
        if is_missing(x):
            return
        raw = self._raw_cached(x) if self._n >= self.min_points else 0.0
        if self._hi == self._lo and x == self._lo:
            raw = 0.0
        facts = self._facts(x)
        for left, right in self._pairs(facts):
            self._remember(left, right)
        self._recent.append(raw)
        self._past.append(facts)
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._n += 1
        self._cache = None

    def _remember(self, left: tuple[Facts, ...], facts: Facts) -> None:
        key = (left, facts)
        contexts = self._contexts
        contexts[key] = True
        contexts.move_to_end(key)
        rights = self._by_left.setdefault(left, {})
        rights[facts] = rights.get(facts, 0) + 1
        if sum(rights.values()) > _MAX_COUNT:
            # Halving keeps the proportions and bounds the counts (and so the state), and
            # lets old habits fade as the series changes.
            for right in rights:
                rights[right] = max(1, rights[right] // 2)
        while len(contexts) > self.max_contexts:
            (old_left, old_facts), _ = contexts.popitem(last=False)
            old_rights = self._by_left[old_left]
            del old_rights[old_facts]
            if not old_rights:
                del self._by_left[old_left]
