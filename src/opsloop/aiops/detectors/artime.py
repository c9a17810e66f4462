"""ARTime (Hampton 2021): adaptive resonance over window features, as a bounded stream.

Written from the published description of the algorithm, as it runs in NAB:

* **Downsampling.** The probationary period is cut into about ``windows_per_probation``
  windows of ``window`` samples, so one sample stands for ``step`` points (the probation
  over ``window * windows_per_probation``, at least 1). A block of ``step`` points gives its
  maximum, or its minimum when that lies further from a running average of the block means
  (each new mean halves the distance), or its mean when the chosen extreme is within a
  tenth of the mean.
* **Levels.** The sample is placed in the file's range, rounded to one of ``levels`` + 1
  levels, and snapped to a running median level when within ``chomp`` of it.
* **Features.** The last ``window`` samples, rescaled to [0, 1], go through a full Haar
  wavelet transform (itself rescaled to [0, 1]); the features are those coefficients
  followed by the samples themselves.
* **Resonance.** A fuzzy ART with two vigilances (dual-vigilance fuzzy ART) learns the
  complement-coded features. A category's match is its fuzzy overlap with the input
  (cubed) times the overlap in the newest sample alone (its "energy", squared). Every
  category matching at least the upper vigilance learns the input (fast commit); otherwise
  the input becomes a new category, which belongs to the best category's cluster when that
  one matches at least the lower vigilance, else starts a cluster of its own: that is an
  anomaly candidate.
* **Vigilance.** The probationary samples are learnt in one batch once they are all in:
  both vigilances start at the mean match of the second half of a trial run (inputs in
  order of increasing similarity to the others, at a vigilance of ``initial_rho``). Every
  half trend window (the probation in samples), and 12 samples after an anomaly, the upper
  vigilance becomes the mean match so far (at most 0.97), and the lower one rises a fifth
  of the way to the least match of the last half window, or else falls by half the mean
  shortfall of recent matches (never below the mean match of past anomalies).
* **Score.** A candidate is reported unless masked (after a new category or a vigilance
  update, until 12 samples pass without a new category; and 12 samples after an anomaly),
  a masked one still counting when its match is far below the last anomaly's. Its score is
  how far below the two vigilances its match falls, plus how little its energy matches;
  every other point scores 0.

Hints. NAB gives ARTime each file's minimum, maximum and length. Here they are hints
(:meth:`Detector.hint`): the range fixes the levels and the probationary length fixes the
downsampling and the trend window. Without a range hint, the points of the probationary
period (``warmup_points`` without a probation hint) are held back until it ends, their
range fixes the levels, and they are replayed: the original reports nothing during that
period either. Values outside the range are clipped to it. Without a probation hint, the
probation is ``warmup_points`` (150, so every point is a sample).

Bounded, unlike the original: at most ``max_categories`` categories (once full, a new one
replaces the category unused the longest: neither the best match nor resonant), and running
means instead of the full histories of matches and anomalies.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from opsloop.aiops.detectors._ranged import RangedDetector
from opsloop.aiops.detectors.base import is_missing

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["ARTimeDetector"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Vigilance adaptation constants of the published detector.
_RHO_UB_CAP = 0.97
_RISE = 0.19
_SHORTFALL_FLOOR = 0.05
_SHORTFALL_CAP = 0.37
_MIN_FALL = 0.01
# Share of the last anomaly's match below which a candidate counts despite a mask.
_BELOW_LAST_MASKED = 0.90
_BELOW_LAST = 0.70
# Weights of the score: the two vigilance gaps and the energy mismatch.
_UB_WEIGHT = 0.35
_LB_WEIGHT = 0.65
_ENERGY_WEIGHT = 1.5
_MAX_MATCH = 0.999
# A block's extreme within this share of its mean is taken as the mean.
_SPIKE_SHARE = 0.1


def _haar_matrix(n: int) -> FloatArray:
    """The full orthonormal Haar transform of ``n`` (a power of two) samples as a matrix:
    the overall average first, then the details from the coarsest to the finest, each the
    later half of its block minus the earlier half."""
    rows = [np.full(n, 1.0 / math.sqrt(n))]
    width = n
    while width > 1:
        for k in range(n // width):
            row = np.zeros(n)
            row[k * width : k * width + width // 2] = -1.0 / math.sqrt(width)
            row[k * width + width // 2 : (k + 1) * width] = 1.0 / math.sqrt(width)
            rows.append(row)
        width //= 2
    return np.array(rows)


def _unit(values: FloatArray) -> FloatArray:
    """Shift to a minimum of 0 and scale to a maximum of 1 (a flat vector stays at 0)."""
    out: FloatArray = values - values.min()
    top = float(out.max())
    if top != 0.0:
        out /= top
    return out


def _match(weights: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Match, energy match and fuzzy intersection of a complement-coded input with every
    category (rows of ``weights``)."""
    inter = np.minimum(weights, x)
    norm = weights.sum(axis=1)
    norm[norm == 0.0] = 0.001
    feature = inter.sum(axis=1) / norm
    last = x.size // 2 - 1
    energy_w = weights[:, last] + weights[:, -1]
    energy_i = inter[:, last] + inter[:, -1]
    energy = np.divide(energy_i, energy_w, out=np.zeros_like(energy_i), where=energy_w > 0)
    return feature**3 * energy**2, energy, inter


class _Art:
    """Result of presenting one input to the categories (nothing changed yet)."""

    __slots__ = (
        "best",
        "energy",
        "learn",
        "match",
        "new_cluster",
        "new_row",
        "rows",
        "updated",
    )

    def __init__(self) -> None:
        self.best = -1
        self.match = 0.0
        self.energy = 0.0
        self.new_cluster = True
        self.rows: Any = None
        self.updated: Any = None
        self.new_row: Any = None
        self.learn = False


def _present(
    weights: FloatArray | None, x: FloatArray, lb: float, ub: float, *, learning: bool
) -> _Art:
    """Dual-vigilance fuzzy ART on one complement-coded input, without changing anything."""
    out = _Art()
    out.learn = learning
    if weights is None:
        # The first input ever creates an all-ones category and is not learnt.
        out.new_cluster = not learning
        out.new_row = np.ones_like(x)
        return out
    match, energy, inter = _match(weights, x)
    best = int(np.argmax(match))
    out.best = best
    if match[best] > 0.0:
        out.match = float(match[best])
        out.energy = float(energy[best])
    if not learning:
        return out
    resonant = np.flatnonzero(match >= ub)
    if resonant.size:
        out.rows = resonant
        out.updated = inter[resonant]
        out.new_cluster = False
    else:
        out.new_row = x
        out.new_cluster = not match[best] >= lb
    return out


def _commit(
    weights: FloatArray | None, used: IntArray | None, art: _Art, cap: int, i: int
) -> tuple[FloatArray | None, IntArray | None]:
    """The categories, and the sample each was last used at, after an input (changed in
    place when rows learn or one is replaced).

    Once ``cap`` categories are stored, a new one replaces the one unused the longest (never
    the first, all-ones category).
    """
    if weights is None or used is None:
        if art.new_row is None:
            return weights, used
        return art.new_row[np.newaxis, :].copy(), np.array([i], dtype=np.int64)
    if art.best >= 0:
        used[art.best] = i
    if art.rows is not None:
        weights[art.rows] = art.updated
        used[art.rows] = i
    if art.new_row is not None:
        if weights.shape[0] < cap:
            weights = np.vstack([weights, art.new_row[np.newaxis, :]])
            used = np.append(used, i)
        elif weights.shape[0] > 1:
            oldest = int(np.argmin(used[1:])) + 1
            weights[oldest] = art.new_row
            used[oldest] = i
    return weights, used


def _complement(f: FloatArray) -> FloatArray:
    return np.concatenate([f, 1.0 - f])


def _similarity(features: FloatArray) -> FloatArray:
    """Cosine similarity of every pair of feature vectors (a zero vector's similarity is
    one minus the other's norm), 1 on the diagonal."""
    norms = np.linalg.norm(features, axis=1)
    safe = np.where(norms == 0.0, 1.0, norms)
    sim: FloatArray = (features @ features.T) / np.outer(safe, safe)
    zero = norms == 0.0
    sim[zero, :] = (1.0 - norms)[np.newaxis, :].repeat(int(zero.sum()), axis=0)
    sim[:, zero] = (1.0 - norms)[:, np.newaxis].repeat(int(zero.sum()), axis=1)
    np.fill_diagonal(sim, 1.0)
    return sim


class _State:
    """Everything a sample changes; copied (cheaply: the categories are shared until a
    step is committed) so a point can be scored without learning."""

    __slots__ = (
        "a_n",
        "a_sum",
        "above",
        "below",
        "diff_win",
        "ds_ma",
        "dsi",
        "f_window",
        "feats",
        "hist_last",
        "hist_n",
        "hist_sum",
        "last_i",
        "last_rho_i",
        "last_sim",
        "mask_cat",
        "medbin",
        "medlevel",
        "no_new",
        "pending",
        "rho_lb",
        "rho_ub",
        "sim_win",
        "used",
        "weights",
    )

    def __init__(self, levels: int, window: int, trend: int) -> None:
        self.dsi = 1
        self.ds_ma = 0.0
        self.medbin = [0] * (levels + 1)
        self.medlevel = 0
        self.below = 0
        self.above = 0
        self.f_window = [0.0] * window
        self.feats: list[FloatArray] = []
        self.weights: FloatArray | None = None
        self.used: IntArray | None = None
        self.pending: _Art | None = None
        self.rho_lb = 0.0
        self.rho_ub = 0.0
        self.last_i = 0
        self.last_sim = 0.0
        self.last_rho_i = 0
        self.mask_cat = False
        self.no_new = 0
        self.a_sum = 0.0
        self.a_n = 0
        self.hist_sum = 0.0
        self.hist_n = 0
        self.hist_last = 0.0
        self.sim_win = [1.0] * (trend // 2 + 1)
        self.diff_win = [0.0] * (trend + 1)

    def copy(self) -> _State:
        new = object.__new__(_State)
        for name in _State.__slots__:
            value = getattr(self, name)
            setattr(new, name, list(value) if isinstance(value, list) else value)
        return new


class ARTimeDetector(RangedDetector):
    """ARTime: anomalies where window features fail to resonate with learnt categories.

    Args:
        window: Samples per feature window (a power of two).
        windows_per_probation: Feature windows the probationary period is cut into; sets the
            downsampling.
        levels: Levels of the file's range a sample is rounded to.
        chomp: Distance to the running median level below which a sample is snapped to it.
        initial_rho: Vigilance of the trial run that sets the first vigilances.
        max_categories: Categories stored at most (bounds memory and time per point).
        warmup_points: Probationary length without a probation hint; without a range hint,
            the points held back to fix the range when no probation is hinted either.
    """

    alert_threshold: ClassVar[float] = 0.438

    def __init__(
        self,
        *,
        window: int = 8,
        windows_per_probation: int = 13,
        levels: int = 80,
        chomp: float = 0.075,
        initial_rho: float = 0.80,
        max_categories: int = 256,
        warmup_points: int = 150,
    ) -> None:
        self.window = window
        self.windows_per_probation = windows_per_probation
        self.levels = levels
        self.chomp = chomp
        self.initial_rho = initial_rho
        self.max_categories = max_categories
        self.warmup_points = warmup_points
        self._probation: int | None = None
        self._lo: float | None = None
        self._span = 1.0
        self._warmup: list[float] = []
        self._block: list[float] = []
        self._n = 0
        self._step_len = 1
        self._trend = 0
        self._mask = 0
        self._state: _State | None = None
        self._cache: tuple[float, int, float, _State | None] | None = None

    # -- hints and layout ------------------------------------------------------------------

    def hint(
        self, *, value_range: tuple[float, float] | None = None, probation: int | None = None
    ) -> None:
        """Take the series' range (levels) and probationary length (downsampling, trend).

        Only a fresh detector takes hints; a trained one ignores them.
        """
        if not self._fresh():
            return
        if probation is not None and probation > 0:
            self._probation = int(probation)
        self._hint_range(value_range)
        if self._lo is not None:
            self._start()

    def _probation_length(self) -> int:
        p = self._probation if self._probation is not None else max(1, self.warmup_points)
        return p - p % 2

    def _set_range(self, lo: float, hi: float) -> None:
        self._lo = lo
        # A flat range is not divided by, as in the original.
        self._span = hi - lo if hi > lo else 1.0

    def _start(self) -> None:
        """Fix the downsampling, trend window and mask from the probationary length."""
        probation = self._probation_length()
        self._step_len = max(1, probation // (self.window * self.windows_per_probation))
        # Enough samples for the first vigilance's trial run.
        self._trend = max(probation // self._step_len, 2 * self.window)
        self._mask = int(self.window * 1.5)
        self._state = _State(self.levels, self.window, self._trend)

    # -- one sample ------------------------------------------------------------------------

    def _sample(self, s: _State, block: list[float]) -> float:
        """The level-snapped sample of a block (changes the running average and median)."""
        mean = sum(block) / len(block)
        top, bottom = max(block), min(block)
        if s.dsi == 1:
            s.ds_ma = mean
        s.ds_ma = (s.ds_ma + mean) / 2.0
        ds = top
        if abs(top - s.ds_ma) < abs(bottom - s.ds_ma):
            ds = bottom
        if abs(ds - mean) < _SPIKE_SHARE * mean:
            ds = mean
        assert self._lo is not None
        ds = min(1.0, max(0.0, (ds - self._lo) / self._span))
        level = round(ds * self.levels)
        ds = level / self.levels
        self._median(s, level)
        med = s.medlevel / self.levels
        if abs(ds - med) < self.chomp:
            ds = med
        return ds

    @staticmethod
    def _median(s: _State, level: int) -> None:
        """An approximate running median level: one step per sample towards the middle."""
        s.medbin[level] += 1
        half = s.dsi // 2
        if s.dsi == 1:
            s.medlevel = level
        if s.medlevel > level:
            s.below += 1
        elif s.medlevel < level:
            s.above += 1
        if half < s.above:
            s.below += s.medbin[s.medlevel]
            s.medlevel += 1
            while s.medbin[s.medlevel] == 0:
                s.medlevel += 1
            s.above -= s.medbin[s.medlevel]
        elif half < s.below:
            s.above += s.medbin[s.medlevel]
            s.medlevel -= 1
            while s.medbin[s.medlevel] == 0:
                s.medlevel -= 1
            s.below -= s.medbin[s.medlevel]

    def _features(self, s: _State, ds: float) -> FloatArray:
        s.f_window = [*s.f_window[1:], ds]
        if s.dsi < self.window:
            return np.zeros(2 * self.window)
        samples = np.array(s.f_window)
        coefs = _unit(_haar(self.window) @ _unit(samples))
        return np.concatenate([coefs, samples])

    def _process(self, s: _State, block: list[float]) -> float:
        """One downsampled sample: the score of the point that ends its block."""
        ds = self._sample(s, block)
        f = self._features(s, ds)
        i = s.dsi
        s.dsi += 1
        if i < self._trend:
            s.feats.append(f)
            return 0.0
        if i == self._trend:
            s.feats.append(f)
            self._batch(s)
            return 0.0
        return self._detect(s, f, i)

    def _batch(self, s: _State) -> None:
        """Learn the probationary samples at once, from a vigilance found by a trial run."""
        feats = np.array(s.feats)
        s.feats = []
        rho = self._initial_rho(feats[self.window - 1 :])
        s.rho_lb = s.rho_ub = rho
        for i, f in enumerate(feats, start=1):
            self._detect(s, f, i)
            self._commit(s, i)

    def _initial_rho(self, feats: FloatArray) -> float:
        order = np.argsort(_similarity(feats).sum(axis=0), kind="stable")
        weights: FloatArray | None = None
        used: IntArray | None = None
        matches = []
        for i, f in enumerate(feats[order], start=1):
            art = _present(
                weights, _complement(f), self.initial_rho, self.initial_rho, learning=True
            )
            matches.append(art.match)
            weights, used = _commit(weights, used, art, self.max_categories, i)
        start = min(self._trend // 2 - 1, len(matches) - 1)
        return float(np.mean(matches[start:]))

    def _detect(self, s: _State, f: FloatArray, i: int) -> float:
        mask = self._mask
        after_anomaly_update = (i - s.last_i) == mask
        trend_update = (i - s.last_rho_i) >= self._trend // 2
        masked_after_anomaly = (i - s.last_i) <= mask
        if i > self._trend + mask and s.mask_cat and s.no_new >= mask:
            s.mask_cat = False
        art = _present(s.weights, _complement(f), s.rho_lb, s.rho_ub, learning=i >= self.window)
        s.pending = art
        new_cluster = art.new_cluster or not art.learn
        a = art.match
        s.no_new = 0 if new_cluster else s.no_new + 1
        s.a_sum += a
        s.a_n += 1
        s.sim_win = [*s.sim_win[1:], a]
        s.diff_win = [*s.diff_win[1:], s.rho_ub - a]
        if (i - s.last_i) < mask and s.hist_n and a < s.hist_last:
            s.hist_sum += a - s.hist_last
            s.hist_last = a
        masking = s.mask_cat or masked_after_anomaly
        scale = _BELOW_LAST_MASKED if masked_after_anomaly else _BELOW_LAST
        below_last = a < s.last_sim * scale
        score = 0.0
        if i > self._trend and new_cluster and (not masking or below_last):
            score = self._confidence(s, a, art.energy)
            s.hist_sum += a
            s.hist_n += 1
            s.hist_last = a
            s.last_sim = a
            s.last_i = i
        s.mask_cat = new_cluster or s.mask_cat
        if i > self._trend and (after_anomaly_update or trend_update):
            self._update_rho(s, i)
        return score

    def _update_rho(self, s: _State, i: int) -> None:
        least = min(s.sim_win)
        ub = min(_RHO_UB_CAP, s.a_sum / s.a_n)
        lb = s.rho_lb
        if lb <= least:
            lb += (least - lb) * _RISE
        else:
            fall = 0.0
            if i > 2 * self._trend:
                short = [min(_SHORTFALL_CAP, d) for d in s.diff_win if d > _SHORTFALL_FLOOR]
                if short:
                    fall = sum(short) / len(short)
            lb -= max(_MIN_FALL, fall) / 2.0
            if s.hist_n:
                lb = max(s.hist_sum / s.hist_n, lb)
        s.rho_lb = min(ub, lb)
        s.rho_ub = ub
        s.last_rho_i = i
        s.mask_cat = True

    @staticmethod
    def _confidence(s: _State, match: float, energy: float) -> float:
        m = min(_MAX_MATCH, match)
        ub = ((1.0 - m) - (1.0 - s.rho_ub)) / (1.0 - m)
        lb = ((1.0 - m) - (1.0 - s.rho_lb)) / (1.0 - m)
        score = ub * _UB_WEIGHT + lb * _LB_WEIGHT + (1.0 - energy) * _ENERGY_WEIGHT
        return round(min(1.0, max(0.0, score)), 6)

    # -- the contract ----------------------------------------------------------------------

    def _step(self, x: float) -> tuple[float, _State | None]:
        """The score of ``x`` and, when it ends a block, the state after it (the detector's
        own state is not changed)."""
        cache = self._cache
        if cache is not None and cache[0] == x and cache[1] == self._n:
            return cache[2], cache[3]
        assert self._state is not None
        if (self._n + 1) % self._step_len:
            return 0.0, None
        s = self._state.copy()
        s.pending = None
        score = self._process(s, [*self._block, x])
        self._cache = (x, self._n, score, s)
        return score, s

    def score_one(self, x: float, t: datetime | None = None) -> float:
        """Anomaly score of ``x``: above 0 only when it ends a block whose features fail to
        resonate."""
        if is_missing(x) or self._lo is None:
            return 0.0
        return self._step(x)[0]

    def _warmup_length(self) -> int:
        return self._probation_length()

    def _range_fixed(self) -> None:
        self._start()

    def _learn(self, x: float) -> None:
        """Learn ``x``: add it to its block, and learn the block's sample when it ends."""
        _, s = self._step(x)
        self._n += 1
        self._cache = None
        if s is None:
            self._block.append(x)
            return
        self._block = []
        self._commit(s, s.dsi - 1)
        self._state = s

    def _commit(self, s: _State, i: int) -> None:
        if s.pending is not None:
            s.weights, s.used = _commit(s.weights, s.used, s.pending, self.max_categories, i)
            s.pending = None


_HAAR: dict[int, FloatArray] = {}


def _haar(n: int) -> FloatArray:
    matrix = _HAAR.get(n)
    if matrix is None:
        matrix = _HAAR[n] = _haar_matrix(n)
    return matrix
