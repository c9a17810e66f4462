"""NAB scoring: application windows, scaled sigmoid, threshold sweep and normalisation.

This follows the method published with the Numenta Anomaly Benchmark (NAB 1.x):

* Each labelled anomaly window is a run of rows. A detection inside a window earns
  ``tp_weight * S(p) / S(-1)`` where ``p = -(right - i + 1) / width`` is the row's position
  relative to the window's right edge and ``S(p) = 2 / (1 + exp(5 p)) - 1`` (``-1`` when
  ``p >= 3``). Only the earliest detection of a window counts; a window without a detection
  costs ``fn_weight``.
* A detection outside every window costs ``fp_weight``, weighted by ``S`` of its distance past
  the previous window's right edge, relative to that window's width minus one; before the first
  window it costs the full ``fp_weight``.
* The first ``min(floor(0.15 * rows), 750)`` rows of each file are a probationary period: they
  are neither rewarded nor penalised.
* A detector is scored with one threshold for the whole corpus: the threshold that maximises the
  corpus-wide raw score, found by sweeping every distinct anomaly score (NAB's sweeper).
* The corpus raw score is normalised as ``100 * (raw - null) / (perfect - null)``, where the null
  detector never fires and the perfect detector earns ``tp_weight`` for every window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from opsloop.errors import AIOpsError, DataError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "PROBATIONARY_FRACTION",
    "STANDARD_PROFILES",
    "CorpusScore",
    "CostProfile",
    "FileLabels",
    "FileScore",
    "ThresholdResult",
    "label_rows",
    "normalized_score",
    "optimize_threshold",
    "probationary_length",
    "scaled_sigmoid",
    "score_corpus",
    "score_file",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PROBATIONARY_FRACTION = 0.15
"""Share of each file that is probationary (NAB's default)."""

# NAB caps the probationary period at the fraction of 5000 rows (750 rows).
_PROBATION_CAP_ROWS = 5000


@dataclass(frozen=True)
class CostProfile:
    """Weights of one NAB application profile.

    Attributes:
        name: Profile name, e.g. ``standard``.
        tp_weight: Reward for detecting a window (at its very start).
        fp_weight: Cost of one false-positive row.
        fn_weight: Cost of a missed window.
        tn_weight: Kept for completeness; NAB does not use it.
    """

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0


STANDARD_PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": CostProfile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": CostProfile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def probationary_length(n_rows: int, fraction: float = PROBATIONARY_FRACTION) -> int:
    """Number of leading rows that NAB neither rewards nor penalises.

    Args:
        n_rows: Rows in the file.
        fraction: Probationary share of the file.

    Returns:
        ``min(floor(fraction * n_rows), fraction * 5000)`` as an int (750 rows at most with
        the default fraction).
    """
    return int(min(math.floor(fraction * n_rows), fraction * _PROBATION_CAP_ROWS))


def scaled_sigmoid(position: FloatArray | float) -> FloatArray:
    """NAB's scaled sigmoid of a relative position.

    ``-1`` is a window's left edge (0.9866), ``0`` its right edge (0), ``1`` one window width
    past it (-0.9866); positions of 3 or more give -1.

    Args:
        position: Relative position(s).

    Returns:
        Array of values in [-1, 1].
    """
    pos = np.asarray(position, dtype=np.float64)
    # Clip before exp so far-away positions do not overflow; the branch below replaces them.
    clipped = np.minimum(pos, 3.0)
    values = 2.0 / (1.0 + np.exp(5.0 * clipped)) - 1.0
    return np.where(pos >= 3.0, -1.0, values)


_MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class FileLabels:
    """Per-row scoring geometry of one data file.

    Attributes:
        name: The file's corpus path, e.g. ``realKnownCause/nyc_taxi.csv``.
        n_rows: Rows in the file.
        probation: Length of the probationary period in rows.
        windows: ``(first_row, last_row)`` of every window that holds at least one row.
        n_windows: Windows labelled for the file, including any that hold no rows.
        window_id: Per row, the index into ``windows`` or -1 outside every window.
        unweighted: Per row, the scaled sigmoid value NAB assigns before profile weights.
    """

    name: str
    n_rows: int
    probation: int
    windows: tuple[tuple[int, int], ...]
    n_windows: int
    window_id: IntArray = field(repr=False)
    unweighted: FloatArray = field(repr=False)

    @property
    def in_window(self) -> BoolArray:
        """Per row, whether the row lies inside a window."""
        return self.window_id >= 0

    @property
    def scorable(self) -> BoolArray:
        """Per row, whether the row is past the probationary period."""
        return np.arange(self.n_rows) >= self.probation

    @property
    def scored_windows(self) -> int:
        """Windows that reach past the probationary period (the ones that can be missed)."""
        return sum(1 for _, right in self.windows if right >= self.probation)

    def weights(self, profile: CostProfile) -> FloatArray:
        """Per row, the score a detection at that row contributes under ``profile``."""
        tp = self.unweighted * profile.tp_weight / _MAX_TP
        fp = self.unweighted * profile.fp_weight
        return np.where(self.in_window, tp, fp)


def label_rows(
    name: str,
    row_windows: Sequence[tuple[int, int]],
    n_rows: int,
    *,
    n_windows: int | None = None,
    probationary_fraction: float = PROBATIONARY_FRACTION,
) -> FileLabels:
    """Build the per-row scoring geometry of a file from its windows as row ranges.

    Args:
        name: The file's corpus path (used in messages and results).
        row_windows: ``(first_row, last_row)`` per window, inclusive, in time order.
        n_rows: Rows in the file.
        n_windows: Windows labelled for the file when some hold no rows; defaults to
            ``len(row_windows)``.
        probationary_fraction: Probationary share of the file.

    Returns:
        The file's labels.

    Raises:
        AIOpsError: Windows are out of range, empty, unordered or overlapping.
    """
    window_id = np.full(n_rows, -1, dtype=np.int64)
    unweighted = np.empty(n_rows, dtype=np.float64)
    rows = np.arange(n_rows, dtype=np.float64)
    previous_right = -1
    windows: list[tuple[int, int]] = []
    # Rows before the first window are scored as if 3 widths past a window, i.e. the full cost.
    segment_start = 0
    prev_right_edge: int | None = None
    prev_width = 0.0
    for k, (left, right) in enumerate(row_windows):
        if not 0 <= left <= right < n_rows:
            raise AIOpsError(
                f"{name}: window {k} rows [{left}, {right}] are outside 0..{n_rows - 1}"
            )
        if left <= previous_right:
            raise AIOpsError(f"{name}: window {k} starts at row {left}, inside the previous window")
        _fill_outside(
            unweighted,
            rows=rows,
            start=segment_start,
            stop=left,
            prev_right=prev_right_edge,
            prev_width=prev_width,
        )
        width = float(right - left + 1)
        position = -(right - rows[left : right + 1] + 1.0) / width
        unweighted[left : right + 1] = scaled_sigmoid(position)
        window_id[left : right + 1] = k
        windows.append((left, right))
        previous_right = right
        prev_right_edge, prev_width = right, width
        segment_start = right + 1
    _fill_outside(
        unweighted,
        rows=rows,
        start=segment_start,
        stop=n_rows,
        prev_right=prev_right_edge,
        prev_width=prev_width,
    )
    return FileLabels(
        name=name,
        n_rows=n_rows,
        probation=probationary_length(n_rows, probationary_fraction),
        windows=tuple(windows),
        n_windows=len(windows) if n_windows is None else n_windows,
        window_id=window_id,
        unweighted=unweighted,
    )


def _fill_outside(
    unweighted: FloatArray,
    *,
    rows: FloatArray,
    start: int,
    stop: int,
    prev_right: int | None,
    prev_width: float,
) -> None:
    if start >= stop:
        return
    if prev_right is None:
        unweighted[start:stop] = -1.0
        return
    # NAB divides by (width - 1); a one-row window would divide by zero there, so such a
    # window is treated as two rows wide, which keeps the score finite and monotone.
    span = max(prev_width - 1.0, 1.0)
    unweighted[start:stop] = scaled_sigmoid(np.abs(rows[start:stop] - prev_right) / span)


@dataclass(frozen=True)
class ThresholdResult:
    """Best corpus-wide threshold for one profile.

    Attributes:
        threshold: Rows with an anomaly score ``>=`` this are detections.
        raw_score: The corpus raw score at that threshold.
    """

    threshold: float
    raw_score: float


@dataclass(frozen=True)
class FileScore:
    """Score of one file at one threshold.

    Attributes:
        name: The file's corpus path.
        raw_score: Sum of TP rewards, FP costs and FN costs.
        tp: Detected rows inside windows (NAB counts rows, not windows).
        fp: Detected rows outside windows.
        fn: Undetected rows inside windows.
        tn: Undetected rows outside windows.
        windows_detected: Windows with at least one detection.
        windows_missed: Scored windows with no detection.
    """

    name: str
    raw_score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows_detected: int
    windows_missed: int


def _check_scores(labels: FileLabels, scores: npt.ArrayLike) -> FloatArray:
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (labels.n_rows,):
        raise DataError(
            f"{labels.name}: {values.size} anomaly scores for {labels.n_rows} data rows",
            hint="results must have one row per data row, in the same order",
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{labels.name}: anomaly score at row {int(bad[0])} is not a finite number")
    return values


def optimize_threshold(
    files: Sequence[tuple[FileLabels, npt.ArrayLike]], profile: CostProfile
) -> ThresholdResult:
    """Find the corpus-wide threshold that maximises the raw score (NAB's sweep).

    Every distinct anomaly score is a candidate threshold, plus one above every score (no
    detections). Among equal best scores the highest threshold wins, as in NAB.

    Args:
        files: Each file's labels with its anomaly scores.
        profile: The cost profile.

    Returns:
        The best threshold and its raw score.
    """
    all_scores: list[FloatArray] = []
    all_weights: list[FloatArray] = []
    all_windows: list[IntArray] = []
    base = 0.0
    offset = 0
    top = 1.1
    for labels, scores in files:
        values = _check_scores(labels, scores)
        keep = labels.scorable
        all_scores.append(values[keep])
        all_weights.append(labels.weights(profile)[keep])
        wid = labels.window_id[keep]
        all_windows.append(np.where(wid >= 0, wid + offset, -1))
        offset += len(labels.windows)
        base -= profile.fn_weight * labels.scored_windows
        if values.size:
            top = max(top, float(np.nextafter(values.max(), np.inf)))
    if not all_scores or sum(a.size for a in all_scores) == 0:
        return ThresholdResult(threshold=top, raw_score=base)
    scores_cat = np.concatenate(all_scores)
    order = np.argsort(-scores_cat, kind="stable")
    sorted_scores = scores_cat[order]
    weights = np.concatenate(all_weights)[order]
    wids = np.concatenate(all_windows)[order]

    # Each detection changes the score: an FP adds its (negative) weight, a TP raises its
    # window's contribution from -fn (or from a later detection) to the earliest one's reward.
    deltas = np.where(wids < 0, weights, 0.0)
    in_win = np.flatnonzero(wids >= 0)
    if in_win.size:
        grouping = in_win[np.argsort(wids[in_win], kind="stable")]
        bounds = np.flatnonzero(np.diff(wids[grouping])) + 1
        for group in np.split(grouping, bounds):
            running = np.maximum.accumulate(np.concatenate(([-profile.fn_weight], weights[group])))
            deltas[group] = np.diff(running)
    totals = base + np.cumsum(deltas)
    # A threshold equal to a score flags every row with that score, so only the last row of
    # each run of equal scores is a candidate.
    last_of_run = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    cand_thresholds = np.concatenate(([top], sorted_scores[last_of_run]))
    cand_scores = np.concatenate(([base], totals[last_of_run]))
    best = int(np.argmax(cand_scores))
    return ThresholdResult(
        threshold=float(cand_thresholds[best]), raw_score=float(cand_scores[best])
    )


def score_file(
    labels: FileLabels, scores: npt.ArrayLike, threshold: float, profile: CostProfile
) -> FileScore:
    """Score one file's anomaly scores at a fixed threshold.

    Args:
        labels: The file's labels.
        scores: One anomaly score per row.
        threshold: Rows scoring ``>= threshold`` are detections.
        profile: The cost profile.

    Returns:
        The file's raw score and counts.
    """
    values = _check_scores(labels, scores)
    keep = labels.scorable
    flagged = keep & (values >= threshold)
    inside = labels.in_window
    weights = labels.weights(profile)
    fp_score = float(weights[flagged & ~inside].sum())
    window_score = 0.0
    detected = missed = 0
    for left, right in labels.windows:
        if right < labels.probation:
            continue
        hits = np.flatnonzero(flagged[left : right + 1])
        if hits.size:
            detected += 1
            window_score += float(weights[left + hits[0]])
        else:
            missed += 1
            window_score -= profile.fn_weight
    return FileScore(
        name=labels.name,
        raw_score=fp_score + window_score,
        tp=int(np.count_nonzero(flagged & inside)),
        fp=int(np.count_nonzero(flagged & ~inside)),
        fn=int(np.count_nonzero(keep & ~flagged & inside)),
        tn=int(np.count_nonzero(keep & ~flagged & ~inside)),
        windows_detected=detected,
        windows_missed=missed,
    )


@dataclass(frozen=True)
class CorpusScore:
    """A detector's result on a corpus for one profile.

    Attributes:
        profile: The cost profile's name.
        threshold: The corpus-wide threshold used.
        raw_score: Sum of the files' raw scores.
        null_score: Raw score of the null detector (never fires).
        perfect_score: Raw score of a perfect detector (``tp_weight`` per window).
        score: Normalised score, 100 for perfect and 0 for null.
        files: Per-file scores.
    """

    profile: str
    threshold: float
    raw_score: float
    null_score: float
    perfect_score: float
    score: float
    files: tuple[FileScore, ...]

    @property
    def tp(self) -> int:
        """Detected rows inside windows, over the corpus."""
        return sum(f.tp for f in self.files)

    @property
    def fp(self) -> int:
        """Detected rows outside windows, over the corpus."""
        return sum(f.fp for f in self.files)

    @property
    def windows_detected(self) -> int:
        """Windows with at least one detection, over the corpus."""
        return sum(f.windows_detected for f in self.files)

    @property
    def windows_missed(self) -> int:
        """Scored windows without a detection, over the corpus."""
        return sum(f.windows_missed for f in self.files)


def normalized_score(raw: float, null: float, perfect: float) -> float:
    """NAB normalisation: ``100 * (raw - null) / (perfect - null)``.

    Raises:
        AIOpsError: The corpus has no window to score (perfect equals null).
    """
    if perfect == null:
        raise AIOpsError("the corpus has no anomaly window, so a normalised score is undefined")
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    results: Mapping[str, npt.ArrayLike],
    labels: Mapping[str, FileLabels],
    profile: CostProfile,
    *,
    threshold: float | None = None,
) -> CorpusScore:
    """Score a detector's anomaly scores on a corpus for one profile.

    Args:
        results: Anomaly scores per file, keyed like ``labels``.
        labels: Labels of every file of the corpus.
        profile: The cost profile.
        threshold: A fixed threshold; by default the corpus-wide best one is found.

    Returns:
        The corpus score.

    Raises:
        DataError: A file of the corpus has no results, or results do not fit their file.
    """
    missing = sorted(set(labels) - set(results))
    if missing:
        raise DataError(f"no anomaly scores for {len(missing)} corpus file(s), first: {missing[0]}")
    pairs = [(labels[name], results[name]) for name in sorted(labels)]
    if threshold is None:
        threshold = optimize_threshold(pairs, profile).threshold
    files = tuple(score_file(lab, sc, threshold, profile) for lab, sc in pairs)
    raw = sum(f.raw_score for f in files)
    null_pairs = [(lab, np.zeros(lab.n_rows)) for lab, _ in pairs]
    null_threshold = optimize_threshold(null_pairs, profile).threshold
    null = sum(score_file(lab, sc, null_threshold, profile).raw_score for lab, sc in null_pairs)
    perfect = profile.tp_weight * sum(lab.n_windows for lab, _ in pairs)
    return CorpusScore(
        profile=profile.name,
        threshold=threshold,
        raw_score=raw,
        null_score=null,
        perfect_score=perfect,
        score=normalized_score(raw, null, perfect),
        files=files,
    )
