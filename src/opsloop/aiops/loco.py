"""Leave-one-category-out cross-validation on an NAB-layout folder: the honest figure.

For every category that has labelled anomaly windows, a detector's setting and its one
corpus-wide threshold are chosen on the *other* categories (``artificialNoAnomaly`` included,
on the tuning side only, since a category without windows has no normalised score), then the
held-out category is scored at that threshold. The held-out raw scores of all rotations are
pooled and normalised together, as NAB normalises a corpus: that is the LOCO score. The
in-sample score (setting and threshold chosen on everything) is kept beside it.

Each setting streams over the corpus once; only thresholds are re-chosen per rotation, which
is cheap. Precomputed results (other detectors' result folders) go through the same protocol
with the threshold as their only setting.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.aiops.benchmark import (
    SOURCE_OPSLOOP,
    SOURCE_RESULTS,
    chosen_profiles,
    rows_progress,
    run_detector,
)
from opsloop.aiops.detectors import DEFAULT_DETECTOR, get_detector
from opsloop.aiops.nab.corpus import NabCorpus, load_results
from opsloop.aiops.nab.scoring import CorpusScore, normalized_score, score_corpus
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import numpy.typing as npt
    from rich.console import Console

    from opsloop.aiops.nab.scoring import CostProfile

__all__ = [
    "LOCO_CANDIDATES",
    "LocoFold",
    "LocoReport",
    "LocoRow",
    "cross_validate_loco",
    "held_out_categories",
]

LOCO_CANDIDATES: dict[str, tuple[dict[str, Any], ...]] = {
    "ensemble": ({}, {"suppress_factor": 0.6}, {"seasonal_weight": 1.0}),
    "context": ({}, {"rest_points": 60}, {"value_bits": 4}, {"max_order": 2}),
    "likelihood": ({}, {"short_window": 3}, {"base": "context"}),
    "cad": ({},),
    "artime": ({},),
    "fused": ({},),
}
"""The small search grid per detector (``{}`` is the defaults); others get their defaults."""


@dataclass(frozen=True)
class LocoFold:
    """One rotation: a category held out, the rest used for tuning.

    Attributes:
        category: The held-out category.
        selected: Index of the setting chosen on the other categories.
        threshold: Threshold chosen there.
        train_score: The chosen setting's score on the other categories.
        test_score: Its score on the held-out category at that threshold.
    """

    category: str
    selected: int
    threshold: float
    train_score: float
    test_score: float


@dataclass(frozen=True)
class LocoRow:
    """One detector's LOCO and in-sample scores per profile.

    Attributes:
        detector: Display name.
        source: ``opsloop`` (run here) or ``results`` (precomputed files).
        loco: Pooled held-out score per profile.
        in_sample: Score with setting and threshold chosen on the whole corpus, per profile.
        folds: Rotations per profile.
        candidates: Settings tried.
        seconds: Time to stream every setting over the corpus (None for results).
        points_per_second: Points streamed per second of wall time, over all settings and
            workers (None for results).
    """

    detector: str
    source: str
    loco: dict[str, float]
    in_sample: dict[str, float]
    folds: dict[str, tuple[LocoFold, ...]]
    candidates: tuple[dict[str, Any], ...] = ()
    seconds: float | None = None
    points_per_second: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "detector": self.detector,
            "source": self.source,
            "loco": dict(self.loco),
            "in_sample": dict(self.in_sample),
            "folds": {p: [asdict(f) for f in folds] for p, folds in self.folds.items()},
            "candidates": [dict(c) for c in self.candidates],
            "seconds": self.seconds,
            "points_per_second": self.points_per_second,
        }


@dataclass(frozen=True)
class LocoReport:
    """The result of :func:`cross_validate_loco`.

    Attributes:
        corpus: The NAB folder.
        categories: Categories held out in turn.
        profiles: Profiles scored.
        rows: One row per detector, best LOCO score (first profile) first.
    """

    corpus: str
    categories: tuple[str, ...]
    profiles: tuple[str, ...]
    rows: tuple[LocoRow, ...] = field(default_factory=tuple)

    def row(self, detector: str) -> LocoRow:
        """The row of one detector.

        Raises:
            AIOpsError: No row has that name.
        """
        for r in self.rows:
            if r.detector == detector:
                return r
        raise AIOpsError(f"no LOCO row for detector {detector!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "corpus": self.corpus,
            "categories": list(self.categories),
            "profiles": list(self.profiles),
            "rows": [r.to_dict() for r in self.rows],
        }


def held_out_categories(corpus: NabCorpus) -> list[str]:
    """Categories with at least one labelled anomaly window, in name order."""
    labels = corpus.labels
    cats: set[str] = set()
    for name, f in corpus.files.items():
        if labels[name].n_windows:
            cats.add(f.category)
    return sorted(cats)


def _rotate(
    runs: Sequence[Mapping[str, npt.NDArray[np.float64]]],
    corpus: NabCorpus,
    categories: Sequence[str],
    cost: CostProfile,
) -> tuple[float, float, tuple[LocoFold, ...]]:
    labels = corpus.labels
    names = list(corpus.files)

    def score(
        run: Mapping[str, npt.NDArray[np.float64]],
        members: Sequence[str],
        threshold: float | None = None,
    ) -> CorpusScore:
        return score_corpus(
            {n: run[n] for n in members},
            {n: labels[n] for n in members},
            cost,
            threshold=threshold,
        )

    raw = null = perfect = 0.0
    folds: list[LocoFold] = []
    for category in categories:
        test = [n for n in names if corpus.files[n].category == category]
        train = [n for n in names if corpus.files[n].category != category]
        trained = [score(r, train) for r in runs]
        # Ties go to the earlier setting, so the defaults win unless beaten.
        best = max(range(len(runs)), key=lambda i: (trained[i].score, -i))
        held = score(runs[best], test, trained[best].threshold)
        raw += held.raw_score
        null += held.null_score
        perfect += held.perfect_score
        folds.append(
            LocoFold(
                category=category,
                selected=best,
                threshold=trained[best].threshold,
                train_score=trained[best].score,
                test_score=held.score,
            )
        )
    in_sample = max(score(r, names).score for r in runs)
    return normalized_score(raw, null, perfect), in_sample, tuple(folds)


def _row(
    name: str,
    source: str,
    runs: Sequence[Mapping[str, npt.NDArray[np.float64]]],
    corpus: NabCorpus,
    categories: Sequence[str],
    profiles: Sequence[str],
    **extra: Any,
) -> LocoRow:
    loco: dict[str, float] = {}
    in_sample: dict[str, float] = {}
    folds: dict[str, tuple[LocoFold, ...]] = {}
    for p in profiles:
        loco[p], in_sample[p], folds[p] = _rotate(runs, corpus, categories, corpus.profiles[p])
    return LocoRow(
        detector=name,
        source=source,
        loco=loco,
        in_sample=in_sample,
        folds=folds,
        **extra,
    )


def cross_validate_loco(
    nab_dir: str | Path,
    detectors: Sequence[str] = (DEFAULT_DETECTOR,),
    profiles: Sequence[str] | None = None,
    *,
    candidates: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    results: Sequence[str | Path] = (),
    workers: int = 1,
    progress: bool = True,
    console: Console | None = None,
    hints: bool = True,
) -> LocoReport:
    """Leave-one-category-out scores of detectors (and precomputed results) on an NAB folder.

    Args:
        nab_dir: NAB-layout folder.
        detectors: Registry names of the detectors to run.
        profiles: Profiles to score (default: all).
        candidates: Settings to choose from per detector (default :data:`LOCO_CANDIDATES`,
            or the defaults alone for a detector it does not list).
        results: Folders of precomputed results, as for the benchmark.
        workers: Processes per detector run (at most the machine's cores).
        progress: Show a progress bar.
        console: Where the progress bar goes.
        hints: Give each detector its file's range and probationary length, as NAB does
            (see :func:`~opsloop.aiops.benchmark.run_detector`); False measures a detector as
            the monitoring loop runs it.

    Returns:
        The report.

    Raises:
        AIOpsError: A detector, parameter or profile is unknown, or fewer than two categories
            have anomaly windows.
        DataError: The folder or a results file is missing or malformed.
    """
    corpus = NabCorpus.load(nab_dir)
    chosen = chosen_profiles(corpus, profiles)
    categories = held_out_categories(corpus)
    if len(categories) < 2:
        raise AIOpsError(
            "leave-one-category-out needs at least two categories with anomaly windows, "
            f"found {len(categories)}"
        )
    grid = LOCO_CANDIDATES if candidates is None else candidates
    settings = {d: tuple(dict(c) for c in grid.get(d, ({},))) or ({},) for d in detectors}
    made = {d: [get_detector(d, **c) for c in settings[d]] for d in detectors}
    bar = rows_progress(console, progress)
    rows: list[LocoRow] = []
    with bar:
        for d in detectors:
            task = bar.add_task(f"{d}: {len(made[d])} settings", total=corpus.n_rows * len(made[d]))
            start = time.perf_counter()

            def advance(_: str, n_rows: int, task: Any = task) -> None:
                bar.advance(task, n_rows)

            runs = [
                run_detector(det, corpus, workers=workers, on_file=advance, hints=hints)
                for det in made[d]
            ]
            seconds = time.perf_counter() - start
            rows.append(
                _row(
                    d,
                    SOURCE_OPSLOOP,
                    runs,
                    corpus,
                    categories,
                    chosen,
                    candidates=settings[d],
                    seconds=seconds,
                    points_per_second=corpus.n_rows * len(runs) / seconds if seconds else None,
                )
            )
    for folder in results:
        path = Path(folder)
        loaded = load_results(path, path.name, corpus)
        rows.append(_row(path.name, SOURCE_RESULTS, [loaded], corpus, categories, chosen))
    first = chosen[0]
    rows.sort(key=lambda r: -r.loco[first])
    return LocoReport(
        corpus=str(corpus.root),
        categories=tuple(categories),
        profiles=tuple(chosen),
        rows=tuple(rows),
    )
