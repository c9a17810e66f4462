"""The Contextual Anomaly Detector, open-source edition (CAD-OSE, Smirnov 2016), as a stream.

Written from the published description of the algorithm, step by step as it runs in NAB:

* **Facts.** A value is quantised to ``2**value_bits`` levels over a known range
  (``value_bits`` = 3: levels 0..7, one level per seventh of the range); each bit ``i`` of the
  level is one fact, ``2 i + bit``.
* **Contexts.** A context pairs a *left* set of facts (what was true just before) with a
  *right* set (what followed). Each context counts how often its left side was fully present
  (weighted by its right side's size), how many of its right facts then came true, and how
  often it was *active* (left and right both fully present).
* **Neurons.** After each point, the (at most ``max_active_neurons``) most often active of
  the contexts that just fired become facts themselves; the next left side is the point's
  facts plus these neuron facts. This is how CAD remembers more than one step back.
* **New contexts.** The *zero-level* context (previous left side, present facts) is stored if
  new; when it is, every stored zero-level context whose left side partly matched the
  previous left side (at most ``max_left_facts`` facts of it) and whose right side partly
  matched the present facts yields a candidate context of the two intersections.
* **Prediction.** Among the contexts whose left side is fully present in the new left side,
  those with the highest share of right facts come true predict the next point's facts.
* **Score.** If a fact of the point was not predicted, the raw score is
  ``(1 - share of selected contexts that are active + share of candidate contexts that were
  new) / 2``, else 0. A raw score of at least ``base_threshold`` silences the returned scores
  of the next ``rest_points`` points.

Range and rest period. The original is given each file's minimum and maximum and a rest
period of a fifth of NAB's probationary period. Here both are *hints*
(:meth:`Detector.hint`): the NAB benchmark hints every detector with the file's range and
probationary length exactly as NAB does. Without a range hint (a live monitor), the range is
that of the first ``warmup_points`` points, which are then replayed; without a probation hint
the rest period is ``rest_points`` (30 unless given). A value outside the range gets levels
beyond it: extra bits above, a fact of its own below.

Bounded, unlike the original: at most ``max_contexts`` contexts are stored; once full, a
candidate that is not stored still counts as new in the score, but nothing more is learnt
except the counts of the stored contexts (halved when they grow large, which keeps their
ratios); and since the candidates of partly covered left sides could not be stored, they are
no longer looked for (the costliest part of a step), so only those of fully covered left sides
count.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from opsloop.aiops.detectors._ranged import RangedDetector
from opsloop.aiops.detectors.base import is_missing

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["CADDetector"]

Facts = tuple[int, ...]
Pair = tuple[Facts, Facts]

# Neuron facts live above every value fact.
_NEURON = 1 << 31
# Fact of a value below the range.
_BELOW = _NEURON - 1
# Widest level a value is encoded with (a wild outlier gets at most this many bits).
_MAX_BITS = 64
# Counts halve when they reach this, which bounds the state and keeps ratios.
_COUNT_CAP = 1 << 20


def _tie(facts: Facts) -> int:
    """Rank of a semi-context among equally active ones: arbitrary but fixed."""
    return hash(facts)


class _Step:
    """What one point does to the memory: computed by :meth:`CADDetector._step` without
    changing anything, then applied by :meth:`CADDetector._apply`."""

    __slots__ = (
        "active",
        "candidates",
        "facts",
        "raw",
        "updates",
        "zero",
        "zero_new",
    )

    def __init__(self) -> None:
        self.facts: Facts = ()
        self.raw = 0.0
        self.zero: Pair | None = None
        self.zero_new = False
        self.updates: list[tuple[int, int, bool]] = []
        self.active: list[tuple[int, int, int, int]] = []
        self.candidates: list[Pair] = []


class CADDetector(RangedDetector):
    """CAD-OSE: anomaly score from the failure of learnt contexts to predict the present facts.

    Args:
        value_bits: Bits of the quantised value (CAD's ``numNormValueBits``).
        max_left_facts: Largest partial left side a candidate context takes
            (``maxLeftSemiContextsLenght``).
        max_active_neurons: Active contexts that become facts of the next left side.
        base_threshold: Raw score that starts a rest period.
        rest_points: Points silenced after a raw score of ``base_threshold``; None: a fifth of
            the hinted probationary period, or 30 without one.
        max_contexts: Contexts stored at most (bounds memory and time per point).
        warmup_points: Points whose range fixes the quantisation when no range is hinted.
    """

    alert_threshold: ClassVar[float] = 0.777

    def __init__(
        self,
        *,
        value_bits: int = 3,
        max_left_facts: int = 7,
        max_active_neurons: int = 15,
        base_threshold: float = 0.75,
        rest_points: int | None = None,
        max_contexts: int = 5_000,
        warmup_points: int = 150,
    ) -> None:
        self.value_bits = value_bits
        self.max_left_facts = max_left_facts
        self.max_active_neurons = max_active_neurons
        self.base_threshold = base_threshold
        self.rest_points = rest_points
        self.max_contexts = max_contexts
        self.warmup_points = warmup_points
        # Quantisation: set by a range hint or at the end of the warm-up.
        self._lo: float | None = None
        self._unit = 1.0
        self._probation: int | None = None
        self._warmup: list[float] = []
        # Semi-contexts: facts -> id, and per id its size; left ones map right id -> context.
        self._left_ids: dict[Facts, int] = {}
        self._left_of: list[Facts] = []
        self._left_contexts: list[dict[int, int]] = []
        self._right_ids: dict[Facts, int] = {}
        self._right_facts: list[Facts] = []
        # Left semi-contexts by their highest (rarest) fact; right ones by each of their facts.
        self._left_index: dict[int, list[int]] = {}
        self._right_index: dict[int, list[int]] = {}
        # Per context: times its left side was full (weighted by right size), right facts
        # that then came true, times active, whether it is zero-level, its left and right ids.
        self._seen: list[int] = []
        self._hits: list[int] = []
        self._activity: list[int] = []
        self._zero_level: list[bool] = []
        self._ctx_left: list[int] = []
        self._ctx_right: list[int] = []
        # The present left side, its crossing with the left semi-contexts, the prediction.
        self._left_facts: Facts = ()
        self._full: list[int] = []
        self._predicted: frozenset[int] = frozenset()
        self._history: deque[float] = deque([1.0], maxlen=self._rest())
        self._n = 0
        self._cache: tuple[float, int, _Step] | None = None

    # -- hints and quantisation ------------------------------------------------------------

    def hint(
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Take the series' range (quantisation) and probationary length (rest period).

        Only a fresh detector takes hints; a trained one ignores them.
        """
        if not self._fresh():
            return
        if probation is not None:
            self._probation = int(probation)
            self._history = deque([1.0], maxlen=self._rest())
        self._hint_range(value_range)

    def _rest(self) -> int:
        if self.rest_points is not None:
            return max(1, int(self.rest_points))
        if self._probation is not None:
            return max(1, int(self._probation / 5.0))
        return 30

    def _set_range(self, lo: float, hi: float) -> None:
        levels = (1 << self.value_bits) - 1.0
        span = hi - lo
        self._lo = lo
        self._unit = (span if span > 0.0 else levels) / levels

    def _facts(self, x: float) -> Facts:
        assert self._lo is not None
        level = (x - self._lo) / self._unit
        if level < 0.0:
            # CAD never sees one (its range is the file's); below the range is a fact apart.
            return (_BELOW,)
        n = int(min(level, float((1 << _MAX_BITS) - 1)))
        bits = max(self.value_bits, n.bit_length())
        return tuple(2 * i + ((n >> i) & 1) for i in range(bits))

    # -- the step --------------------------------------------------------------------------

    def _step(self, x: float) -> _Step:
        """Everything the point ``x`` does, without changing the detector."""
        s = _Step()
        facts = self._facts(x)
        s.facts = facts
        predicted = self._predicted
        unpredicted = any(f not in predicted for f in facts)
        new_flag = False
        if self._left_facts:
            s.zero = (self._left_facts, facts)
            new_flag = self._context_id(s.zero) is None
            s.zero_new = new_flag
        # Cross the present facts with the right semi-contexts.
        right_hits: dict[int, list[int]] = {}
        for f in facts:
            for rid in self._right_index.get(f, ()):
                right_hits.setdefault(rid, []).append(f)
        # The left semi-contexts the previous left side covered. Fully covered ones were
        # selected, and the present facts say how well their contexts predicted; after a new
        # zero-level context, partly covered ones (and the failed full ones) yield candidates.
        selected = 0
        if new_flag and len(self._seen) < self.max_contexts:
            previous = set(self._left_facts)
            covered = [
                (lid, tuple(f for f in left if f in previous))
                for lid, left in enumerate(self._left_of)
            ]
        else:
            covered = [(lid, self._left_of[lid]) for lid in self._full]
        for lid, crossed in covered:
            if not crossed:
                continue
            full = len(crossed) == len(self._left_of[lid])
            short = len(crossed) <= self.max_left_facts
            for rid, cid in self._left_contexts[lid].items():
                matched = right_hits.get(rid)
                if full:
                    selected += 1
                    if not matched:
                        s.updates.append((cid, 0, False))
                        continue
                    rid_facts = self._right_facts[rid]
                    if len(matched) == len(rid_facts):
                        s.updates.append((cid, len(matched), True))
                        # Equally active ones are ranked by a fixed hash of their two sides.
                        rank = (_tie(crossed), _tie(rid_facts))
                        s.active.append((self._activity[cid] + 1, *rank, cid))
                        continue
                    s.updates.append((cid, len(matched), False))
                elif not matched:
                    continue
                if new_flag and short and self._zero_level[cid]:
                    s.candidates.append((crossed, tuple(matched)))
        share_active = len(s.active) / selected if selected else 0.0
        uniq = set(s.candidates)
        if s.zero is not None:
            uniq.add(s.zero)
        added = 0
        if new_flag:
            # The zero-level context is stored first, so a candidate equal to it is not new.
            added = 1 + sum(1 for c in uniq if c != s.zero and self._context_id(c) is None)
        share_new = added / len(uniq) if new_flag and uniq else 0.0
        if unpredicted:
            s.raw = (1.0 - share_active + share_new) / 2.0
        return s

    def _context_id(self, pair: Pair) -> int | None:
        lid = self._left_ids.get(pair[0])
        rid = self._right_ids.get(pair[1])
        if lid is None or rid is None:
            return None
        return self._left_contexts[lid].get(rid)

    def _store(self, pair: Pair, *, zero_level: bool) -> int | None:
        """The id of a context, stored if new and there is room (None: not stored)."""
        left, right = pair
        cid = self._context_id(pair)
        if cid is not None:
            if zero_level:
                self._zero_level[cid] = True
            return cid
        if len(self._seen) >= self.max_contexts:
            return None
        lid = self._left_ids.get(left)
        if lid is None:
            lid = len(self._left_of)
            self._left_ids[left] = lid
            self._left_of.append(left)
            self._left_contexts.append({})
            self._left_index.setdefault(left[-1], []).append(lid)
        rid = self._right_ids.get(right)
        if rid is None:
            rid = len(self._right_facts)
            self._right_ids[right] = rid
            self._right_facts.append(right)
            for f in right:
                self._right_index.setdefault(f, []).append(rid)
        cid = len(self._seen)
        self._left_contexts[lid][rid] = cid
        self._seen.append(0)
        self._hits.append(0)
        self._activity.append(0)
        self._zero_level.append(zero_level)
        self._ctx_left.append(lid)
        self._ctx_right.append(rid)
        return cid

    def _apply(self, s: _Step) -> None:
        """Learn what the step computed: counts, new contexts, the next left side and
        prediction."""
        # The zero-level context is stored before the counts are updated, and a new one is
        # not counted at this step (its left side did not select it).
        if s.zero is not None:
            self._store(s.zero, zero_level=True)
        for cid, hits, active in s.updates:
            self._seen[cid] += len(self._right_facts[self._ctx_right[cid]])
            self._hits[cid] += hits
            if active:
                self._activity[cid] += 1
            if self._seen[cid] >= _COUNT_CAP:
                self._seen[cid] //= 2
                self._hits[cid] //= 2
        if any(a >= _COUNT_CAP for a, _, _, _ in s.active):
            self._activity = [a // 2 for a in self._activity]
        ranked = sorted(s.active)[-self.max_active_neurons :]
        neurons = {_NEURON + cid for _, _, _, cid in ranked}
        self._left_facts = tuple(sorted(set(s.facts) | neurons))
        for pair in dict.fromkeys(s.candidates):
            self._store(pair, zero_level=False)
        self._predict()

    def _predict(self) -> None:
        """Cross the new left side with the left semi-contexts and predict the next facts."""
        present = set(self._left_facts)
        full: list[int] = []
        for f in self._left_facts:
            for lid in self._left_index.get(f, ()):
                if present.issuperset(self._left_of[lid]):
                    full.append(lid)
        full.sort()
        self._full = full
        best = 0.0
        rights: list[int] = []
        for lid in self._full:
            for rid, cid in self._left_contexts[lid].items():
                seen = self._seen[cid]
                weight = self._hits[cid] / seen if seen else 0.0
                if weight > best:
                    best = weight
                    rights = [rid]
                elif weight == best:
                    rights.append(rid)
        self._predicted = frozenset(f for rid in rights for f in self._right_facts[rid])

    # -- the contract ----------------------------------------------------------------------

    def _step_cached(self, x: float) -> _Step:
        cache = self._cache
        if cache is not None and cache[0] == x and cache[1] == self._n:
            return cache[2]
        s = self._step(x)
        self._cache = (x, self._n, s)
        return s

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x`` given the contexts learnt so far."""
        if is_missing(x) or self._lo is None:
            return 0.0
        raw = self._step_cached(x).raw
        if max(self._history) >= self.base_threshold:
            return 0.0
        return min(1.0, max(0.0, raw))

    def _warmup_length(self) -> int:
        return self.warmup_points

    def _learn(self, x: float) -> None:
        """Learn ``x``: its contexts, the next left side and the next prediction."""
        s = self._step_cached(x)
        self._apply(s)
        self._history.append(s.raw)
        self._n += 1
        self._cache = None
