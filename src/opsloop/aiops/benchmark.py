"""Run detectors over an NAB-layout folder and score them: the scoreboard and the
out-of-sample check.

Every detector is run as a stream over every file (a fresh clone per file, ``score_one``
before ``learn_one``), then scored with NAB's method: one corpus-wide threshold per profile,
chosen by sweeping, and the normalised score. Precomputed results
(``results/<detector>/<category>/<detector>_<file>.csv``) are scored the same way, and the
figures NAB publishes for its subset are shown beside when the corpus is that subset.
Tables and charts of the results are :mod:`opsloop.aiops.benchmark_render`'s work.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from opsloop.aiops.detectors import DEFAULT_DETECTOR, DETECTORS, Detector, get_detector
from opsloop.aiops.nab.corpus import NabCorpus, load_results
from opsloop.aiops.nab.scoring import CorpusScore, probationary_length, score_corpus
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from rich.console import Console

__all__ = [
    "DEFAULT_CV_CANDIDATES",
    "PUBLISHED_SUBSET_CATEGORIES",
    "PUBLISHED_SUBSET_FILES",
    "PUBLISHED_SUBSET_SCORES",
    "REFERENCE_RESULTS",
    "SOURCE_OPSLOOP",
    "SOURCE_PUBLISHED",
    "SOURCE_RESULTS",
    "CVFold",
    "CVReport",
    "Scoreboard",
    "ScoreboardRow",
    "cross_validate_nab",
    "find_result_folders",
    "run_detector",
    "run_nab_benchmark",
    "stratified_folds",
]

FloatArray = npt.NDArray[np.float64]

PUBLISHED_SUBSET_CATEGORIES = frozenset(
    {"artificialNoAnomaly", "artificialWithAnomaly", "realAWSCloudwatch", "realKnownCause"}
)
"""The NAB categories of the subset the published figures below are for."""

PUBLISHED_SUBSET_FILES = 35
"""Number of NAB files in those categories."""

PUBLISHED_SUBSET_SCORES: dict[str, dict[str, float]] = {
    "ARTime": {"standard": 67.85},
    "Numenta HTM": {"standard": 66.59, "reward_low_FP_rate": 60.81, "reward_low_FN_rate": 71.06},
    "CAD-OSE": {"standard": 62.19},
    "KNN-CAD": {"standard": 52.97},
    "Relative Entropy": {"standard": 50.01},
    "Random Cut Forest": {"standard": 49.53},
    "Twitter ADVec": {"standard": 36.18},
    "Etsy Skyline": {"standard": 33.76},
    "Windowed Gaussian": {"standard": 21.97},
}
"""Published NAB scores of other detectors on the subset, with the threshold optimised on it."""

SOURCE_OPSLOOP = "opsloop"
"""Source of a row whose detector ran here."""
SOURCE_RESULTS = "results"
"""Source of a row scored from precomputed results files."""
SOURCE_PUBLISHED = "published"
"""Source of a row of published figures."""


@dataclass(frozen=True)
class ScoreboardRow:
    """One detector's line on the scoreboard.

    Attributes:
        detector: Display name.
        source: ``opsloop`` (run here), ``results`` (precomputed files) or ``published``.
        scores: Normalised score per profile.
        thresholds: Corpus-wide threshold per profile (empty for published figures).
        windows_detected: Windows detected in the standard (or first) profile.
        windows: Windows that could be detected.
        false_positives: False-positive rows in the standard (or first) profile.
        seconds: Time the detector took over the corpus.
        params: Detector parameters, for detectors run here.
    """

    detector: str
    source: str
    scores: dict[str, float]
    thresholds: dict[str, float] = field(default_factory=dict)
    windows_detected: int | None = None
    windows: int | None = None
    false_positives: int | None = None
    seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "detector": self.detector,
            "source": self.source,
            "scores": dict(self.scores),
            "thresholds": dict(self.thresholds),
            "windows_detected": self.windows_detected,
            "windows": self.windows,
            "false_positives": self.false_positives,
            "seconds": self.seconds,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class Scoreboard:
    """The result of a benchmark run.

    Attributes:
        corpus: The NAB folder.
        files: Files scored.
        rows_total: Data rows over all files.
        windows: Labelled anomaly windows.
        profiles: Profiles scored, in order.
        rows: One row per detector, sorted by the first profile's score, best first.
    """

    corpus: str
    files: int
    rows_total: int
    windows: int
    profiles: tuple[str, ...]
    rows: tuple[ScoreboardRow, ...]

    def best(self, profile: str | None = None, source: str | None = None) -> ScoreboardRow | None:
        """The best row for a profile (default: the first), optionally from one source."""
        profile = profile or self.profiles[0]
        rows = [
            r for r in self.rows if profile in r.scores and (source is None or r.source == source)
        ]
        return max(rows, key=lambda r: r.scores[profile]) if rows else None

    def row(self, detector: str) -> ScoreboardRow:
        """The row of one detector by display name.

        Raises:
            AIOpsError: No row has that name.
        """
        for r in self.rows:
            if r.detector == detector:
                return r
        raise AIOpsError(f"no scoreboard row for detector {detector!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "corpus": self.corpus,
            "files": self.files,
            "rows_total": self.rows_total,
            "windows": self.windows,
            "profiles": list(self.profiles),
            "rows": [r.to_dict() for r in self.rows],
        }


RESULT_ROOTS = ("results", "reference_results")
"""Folders of an NAB folder that hold other detectors' precomputed results, one subfolder each."""


def find_result_folders(nab_dir: str | Path) -> list[Path]:
    """Every precomputed results folder of an NAB folder (``results/<name>/<category>/...``
    or ``reference_results/<name>/...``), by name; the first root wins a name found twice."""
    found: dict[str, Path] = {}
    for root in RESULT_ROOTS:
        base = Path(nab_dir) / root
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if folder.is_dir() and any(c.is_dir() for c in folder.iterdir()):
                found.setdefault(folder.name, folder)
    return [found[name] for name in sorted(found)]


def _detector_name(detector: Detector) -> str:
    for name, cls in DETECTORS.items():
        if type(detector) is cls:
            return name
    return type(detector).__name__


def _run_file(
    detector: Detector,
    times: npt.NDArray[np.datetime64],
    values: FloatArray,
    hints: bool = True,
) -> FloatArray:
    fresh = detector.clone()
    # As NAB does for every detector: the file's range and its probationary length.
    finite = values[np.isfinite(values)]
    if hints and finite.size:
        fresh.hint(
            value_range=(float(finite.min()), float(finite.max())),
            probation=probationary_length(len(values)),
        )
    return fresh.score_many(values, times)


def run_detector(
    detector: Detector,
    corpus: NabCorpus,
    *,
    workers: int = 1,
    on_file: Callable[[str, int], None] | None = None,
    hints: bool = True,
) -> dict[str, FloatArray]:
    """Stream every file of a corpus through a fresh clone of ``detector``.

    Args:
        detector: The detector (its parameters are used; its state is not).
        corpus: The corpus.
        workers: Processes to spread files over (1 runs in this process).
        on_file: Called with each finished file's name and row count (for progress).
        hints: Tell each fresh detector its file's minimum and maximum and its probationary
            length, as NAB does (False: nothing, as in the monitoring loop, which cannot know
            a series' range or length beforehand).

    Returns:
        Anomaly scores per file.
    """
    names = list(corpus.files)
    out: dict[str, FloatArray] = {}
    if workers <= 1:
        for name in names:
            f = corpus.files[name]
            out[name] = _run_file(detector, f.timestamps, f.values, hints)
            if on_file:
                on_file(name, f.labels.n_rows)
        return out
    # Spawned workers: forking a process that may hold threads (a progress bar's refresher)
    # is unsafe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # Longest files first, so the pool does not end waiting on one large file.
        names.sort(key=lambda n: -corpus.files[n].labels.n_rows)
        futures = {
            name: pool.submit(
                _run_file,
                detector,
                corpus.files[name].timestamps,
                corpus.files[name].values,
                hints,
            )
            for name in names
        }
        for name in names:
            out[name] = futures[name].result()
            if on_file:
                on_file(name, corpus.files[name].labels.n_rows)
    return {name: out[name] for name in corpus.files}


def _score_row(
    *,
    name: str,
    source: str,
    results: dict[str, FloatArray],
    corpus: NabCorpus,
    profiles: Sequence[str],
    seconds: float | None,
    params: dict[str, Any],
) -> ScoreboardRow:
    scored: dict[str, CorpusScore] = {
        p: score_corpus(results, corpus.labels, corpus.profiles[p]) for p in profiles
    }
    main = scored["standard"] if "standard" in scored else scored[profiles[0]]
    return ScoreboardRow(
        detector=name,
        source=source,
        scores={p: s.score for p, s in scored.items()},
        thresholds={p: s.threshold for p, s in scored.items()},
        windows_detected=main.windows_detected,
        windows=main.windows_detected + main.windows_missed,
        false_positives=main.fp,
        seconds=seconds,
        params=params,
    )


def chosen_profiles(corpus: NabCorpus, profiles: Sequence[str] | None) -> list[str]:
    """The cost profiles to score: those named (default: all of the corpus), checked.

    Raises:
        AIOpsError: A named profile is not one of the corpus.
    """
    chosen = list(profiles) if profiles else list(corpus.profiles)
    unknown = [p for p in chosen if p not in corpus.profiles]
    if unknown:
        raise AIOpsError(f"unknown profile {unknown[0]!r}; profiles: {', '.join(corpus.profiles)}")
    return chosen


def rows_progress(console: Console | None, progress: bool) -> Progress:
    """The progress bar of a detector run over a corpus, counting rows scored."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )


def _is_published_subset(corpus: NabCorpus) -> bool:
    categories = {f.category for f in corpus.files.values()}
    return categories == PUBLISHED_SUBSET_CATEGORIES and len(corpus.files) == PUBLISHED_SUBSET_FILES


def _as_detectors(detectors: Iterable[str | Detector]) -> list[tuple[str, Detector]]:
    out: list[tuple[str, Detector]] = []
    for d in detectors:
        if isinstance(d, str):
            out.append((d, get_detector(d)))
        else:
            out.append((_detector_name(d), d))
    names = [n for n, _ in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AIOpsError(f"detector {duplicates[0]!r} is listed twice")
    return out


def run_nab_benchmark(
    nab_dir: str | Path,
    detectors: Sequence[str | Detector] = (DEFAULT_DETECTOR,),
    profiles: Sequence[str] | None = None,
    *,
    results: Sequence[str | Path] = (),
    published: bool | None = None,
    workers: int = 1,
    progress: bool = True,
    console: Console | None = None,
) -> Scoreboard:
    """Run detectors over an NAB-layout folder and score them.

    Args:
        nab_dir: Folder with ``data/``, ``labels/combined_windows.json`` and
            ``config/profiles.json``.
        detectors: Registry names or detector instances to run.
        profiles: Profiles to score (default: all in ``config/profiles.json``).
        results: Folders of precomputed results to score too, each laid out as
            ``<folder>/<category>/<name>_<file>.csv`` where ``<name>`` is the folder's name.
        published: Show NAB's published figures (default: when the corpus is their subset).
        workers: Processes per detector run.
        progress: Show a progress bar.
        console: Where the progress bar goes.

    Returns:
        The scoreboard, best first.

    Raises:
        DataError: The folder or a results file is missing or malformed.
        AIOpsError: A detector or profile name is unknown.
    """
    corpus = NabCorpus.load(nab_dir)
    chosen = chosen_profiles(corpus, profiles)
    runs = _as_detectors(detectors)
    rows: list[ScoreboardRow] = []
    bar = rows_progress(console, progress)
    with bar:
        for name, detector in runs:
            task = bar.add_task(f"{name}", total=corpus.n_rows)

            def advance(_: str, n_rows: int, task: Any = task) -> None:
                bar.advance(task, n_rows)

            start = time.perf_counter()
            scores = run_detector(detector, corpus, workers=workers, on_file=advance)
            seconds = time.perf_counter() - start
            rows.append(
                _score_row(
                    name=name,
                    source=SOURCE_OPSLOOP,
                    results=scores,
                    corpus=corpus,
                    profiles=chosen,
                    seconds=seconds,
                    params=detector.get_params(),
                )
            )
    for folder in results:
        path = Path(folder)
        rows.append(
            _score_row(
                name=path.name,
                source=SOURCE_RESULTS,
                results=load_results(path, path.name, corpus),
                corpus=corpus,
                profiles=chosen,
                seconds=None,
                params={},
            )
        )
    if published is None:
        published = _is_published_subset(corpus)
    if published:
        for name, figures in PUBLISHED_SUBSET_SCORES.items():
            shown = {p: v for p, v in figures.items() if p in chosen}
            if shown:
                rows.append(ScoreboardRow(detector=name, source=SOURCE_PUBLISHED, scores=shown))
    first = chosen[0]
    rows.sort(key=lambda r: -r.scores.get(first, float("-inf")))
    return Scoreboard(
        corpus=str(corpus.root),
        files=len(corpus.files),
        rows_total=corpus.n_rows,
        windows=corpus.n_windows,
        profiles=tuple(chosen),
        rows=tuple(rows),
    )


# --- Out-of-sample check -------------------------------------------------------------------

DEFAULT_CV_CANDIDATES: tuple[dict[str, Any], ...] = (
    {},
    {"suppress_factor": 0.6},
    {"suppress_factor": 0.8},
    {"seasonal_weight": 1.0},
    {"seasonal_weight": 2.0},
    {"smooth_weight": 0.3},
    {"smooth_weight": 0.7},
    {"range_days": 14.0},
)
"""Settings of the ensemble detector around its defaults (``{}`` is the defaults), as
overrides of the constructor parameters, for :func:`cross_validate_nab`."""

REFERENCE_RESULTS = ("reference_results/numenta", "results/numenta")
"""Where :func:`cross_validate_nab` looks for the reference detector's precomputed results."""


@dataclass(frozen=True)
class CVFold:
    """One held-out fold of one repeat.

    Attributes:
        repeat: Repeat number, from 0.
        fold: Fold number within the repeat, from 0.
        test_files: Files held out.
        selected: Index into the report's candidates of the setting chosen on the other folds.
        train_score: The chosen setting's score on the other folds (threshold optimised there).
        threshold: Threshold chosen on the other folds for the chosen setting.
        test_score: The chosen setting's score on the held-out files at ``threshold``.
        default_test_score: The first candidate's held-out score, its threshold also chosen
            on the other folds (separates the cost of choosing a setting from that of
            carrying a threshold over).
        reference_threshold: The reference detector's threshold chosen on the other folds.
        reference_test_score: The reference detector's held-out score at that threshold.
    """

    repeat: int
    fold: int
    test_files: tuple[str, ...]
    selected: int
    train_score: float
    threshold: float
    test_score: float
    default_test_score: float
    reference_threshold: float | None = None
    reference_test_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "repeat": self.repeat,
            "fold": self.fold,
            "test_files": list(self.test_files),
            "selected": self.selected,
            "train_score": self.train_score,
            "threshold": self.threshold,
            "test_score": self.test_score,
            "default_test_score": self.default_test_score,
            "reference_threshold": self.reference_threshold,
            "reference_test_score": self.reference_test_score,
        }


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}


@dataclass(frozen=True)
class CVReport:
    """Out-of-sample NAB scores: settings and thresholds chosen on some files, scored on others.

    Attributes:
        corpus: The NAB folder.
        detector: Registry name of the detector.
        profile: The cost profile scored.
        folds_per_repeat: Folds per repeat.
        repeats: Repeats (each a fresh seeded split).
        seed: Seed of the splits.
        candidates: Settings tried, as parameter overrides.
        in_sample: Each candidate's score on the whole corpus (threshold optimised on it).
        reference: Name of the reference detector, or None when no results were found.
        reference_in_sample: The reference detector's whole-corpus score.
        folds: Every held-out fold.
    """

    corpus: str
    detector: str
    profile: str
    folds_per_repeat: int
    repeats: int
    seed: int
    candidates: tuple[dict[str, Any], ...]
    in_sample: tuple[float, ...]
    reference: str | None
    reference_in_sample: float | None
    folds: tuple[CVFold, ...]

    @property
    def held_out(self) -> dict[str, float]:
        """Mean, min and max held-out score of the selected settings."""
        return _summary([f.test_score for f in self.folds])

    @property
    def default_held_out(self) -> dict[str, float]:
        """Mean, min and max held-out score of the first candidate."""
        return _summary([f.default_test_score for f in self.folds])

    @property
    def reference_held_out(self) -> dict[str, float] | None:
        """Mean, min and max held-out score of the reference detector, if any."""
        scores = [f.reference_test_score for f in self.folds if f.reference_test_score is not None]
        return _summary(scores) if scores else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "corpus": self.corpus,
            "detector": self.detector,
            "profile": self.profile,
            "folds_per_repeat": self.folds_per_repeat,
            "repeats": self.repeats,
            "seed": self.seed,
            "candidates": [dict(c) for c in self.candidates],
            "in_sample": list(self.in_sample),
            "reference": self.reference,
            "reference_in_sample": self.reference_in_sample,
            "held_out": self.held_out,
            "default_held_out": self.default_held_out,
            "reference_held_out": self.reference_held_out,
            "folds": [f.to_dict() for f in self.folds],
        }


def stratified_folds(
    files: Sequence[str], categories: Sequence[str], folds: int, rng: np.random.Generator
) -> list[list[str]]:
    """Split files into folds with every category spread evenly over them.

    Hand-written rather than scikit-learn's ``StratifiedKFold``, which refuses (warns about)
    categories with fewer files than folds; NAB has such categories on small slices.

    Args:
        files: File names.
        categories: Each file's category.
        folds: Number of folds.
        rng: Source of the shuffle.

    Returns:
        The folds, each a sorted list of file names.
    """
    by_category: dict[str, list[str]] = {}
    for name, category in zip(files, categories, strict=True):
        by_category.setdefault(category, []).append(name)
    out: list[list[str]] = [[] for _ in range(folds)]
    for category in sorted(by_category):
        members = sorted(by_category[category])
        order = rng.permutation(len(members))
        # Deal each category's files to the currently smallest folds first (random among
        # ties), so fold sizes stay within one file of each other.
        sizes = np.array([len(f) for f in out])
        fold_order = np.lexsort((rng.random(folds), sizes))
        for k, i in enumerate(order):
            out[int(fold_order[k % folds])].append(members[int(i)])
    return [sorted(f) for f in out]


def _find_reference(nab_dir: Path) -> Path | None:
    for relative in REFERENCE_RESULTS:
        path = nab_dir / relative
        if path.is_dir():
            return path
    return None


def cross_validate_nab(
    nab_dir: str | Path,
    *,
    detector: str = "ensemble",
    candidates: Sequence[Mapping[str, Any]] | None = None,
    folds: int = 2,
    repeats: int = 5,
    seed: int = 0,
    profile: str = "standard",
    reference: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
    console: Console | None = None,
) -> CVReport:
    """Score a detector out of sample: settings and threshold chosen on other files.

    Each repeat splits the files into ``folds`` folds, stratified by category. For each fold
    the candidate with the best score on the other folds (threshold optimised there) is
    chosen, and the held-out fold is scored with that setting at the threshold chosen on the
    other folds. The reference detector's precomputed results are scored on the same folds
    with their threshold chosen the same way. Detectors stream each file on its own, so each
    candidate runs over the corpus once and only the scoring is repeated per fold.

    Args:
        nab_dir: NAB-layout folder.
        detector: Registry name of the detector.
        candidates: Parameter overrides to choose from (default
            :data:`DEFAULT_CV_CANDIDATES`); the first is also scored on its own.
        folds: Folds per repeat (at least 2).
        repeats: Seeded splits to average over.
        seed: Seed of the first split.
        profile: Cost profile to score.
        reference: Folder of the reference detector's results, laid out as
            ``<folder>/<category>/<name>_<file>.csv``; by default the first of
            :data:`REFERENCE_RESULTS` that exists (none: no reference is scored).
        workers: Processes per detector run.
        progress: Show a progress bar.
        console: Where the progress bar goes.

    Returns:
        The report.

    Raises:
        AIOpsError: The detector, a parameter, or the profile is unknown; there are no
            candidates; the folds or repeats are out of range; or a held-out fold has no
            anomaly window.
        DataError: The folder or a results file is missing or malformed.
    """
    settings = tuple(dict(c) for c in (DEFAULT_CV_CANDIDATES if candidates is None else candidates))
    if not settings:
        raise AIOpsError("cross-validation needs at least one candidate setting")
    if repeats < 1:
        raise AIOpsError(f"repeats must be at least 1, got {repeats}")
    corpus = NabCorpus.load(nab_dir)
    chosen_profiles(corpus, [profile])
    if not 2 <= folds <= len(corpus.files):
        raise AIOpsError(
            f"folds must be between 2 and the number of files ({len(corpus.files)}), got {folds}"
        )
    cost = corpus.profiles[profile]
    detectors = [get_detector(detector, **c) for c in settings]
    ref_path = Path(reference) if reference is not None else _find_reference(corpus.root)
    ref_results = load_results(ref_path, ref_path.name, corpus) if ref_path else None

    bar = rows_progress(console, progress)
    runs: list[dict[str, FloatArray]] = []
    with bar:
        task = bar.add_task(
            f"{detector}: {len(settings)} settings", total=corpus.n_rows * len(settings)
        )
        for d in detectors:
            runs.append(
                run_detector(d, corpus, workers=workers, on_file=lambda _, n: bar.advance(task, n))
            )

    labels = corpus.labels

    def subset(results: Mapping[str, FloatArray], names: Sequence[str]) -> dict[str, FloatArray]:
        return {n: results[n] for n in names}

    def score(
        results: Mapping[str, FloatArray], names: Sequence[str], threshold: float | None = None
    ) -> CorpusScore:
        return score_corpus(
            subset(results, names), {n: labels[n] for n in names}, cost, threshold=threshold
        )

    names = list(corpus.files)
    cats = [corpus.files[n].category for n in names]
    rng = np.random.default_rng(seed)
    out: list[CVFold] = []
    for repeat in range(repeats):
        split = stratified_folds(names, cats, folds, rng)
        for k, test in enumerate(split):
            if not any(labels[n].n_windows for n in test):
                raise AIOpsError(
                    f"repeat {repeat}, fold {k}: the held-out files have no anomaly window; "
                    "use fewer folds"
                )
            train = [n for j, f in enumerate(split) if j != k for n in f]
            trained = [score(r, train) for r in runs]
            # Ties go to the earlier candidate, so the defaults win unless beaten.
            best = max(range(len(runs)), key=lambda i: (trained[i].score, -i))
            ref_threshold = ref_score = None
            if ref_results is not None:
                ref_threshold = score(ref_results, train).threshold
                ref_score = score(ref_results, test, ref_threshold).score
            out.append(
                CVFold(
                    repeat=repeat,
                    fold=k,
                    test_files=tuple(test),
                    selected=best,
                    train_score=trained[best].score,
                    threshold=trained[best].threshold,
                    test_score=score(runs[best], test, trained[best].threshold).score,
                    default_test_score=score(runs[0], test, trained[0].threshold).score,
                    reference_threshold=ref_threshold,
                    reference_test_score=ref_score,
                )
            )
    return CVReport(
        corpus=str(corpus.root),
        detector=detector,
        profile=profile,
        folds_per_repeat=folds,
        repeats=repeats,
        seed=seed,
        candidates=settings,
        in_sample=tuple(score(r, names).score for r in runs),
        reference=ref_path.name if ref_path else None,
        reference_in_sample=score(ref_results, names).score if ref_results is not None else None,
        folds=tuple(out),
    )
