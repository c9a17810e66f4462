"""Run detectors over an NAB-layout folder and build a scoreboard.

Every detector is run as a stream over every file (a fresh clone per file, ``score_one``
before ``learn_one``), then scored with NAB's method: one corpus-wide threshold per profile,
chosen by sweeping, and the normalised score. Precomputed results
(``results/<detector>/<category>/<detector>_<file>.csv``) are scored the same way, and the
figures NAB publishes for its subset are shown beside when the corpus is that subset.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from opsloop.aiops.detectors import DETECTORS, Detector, get_detector
from opsloop.aiops.nab.corpus import NabCorpus, load_results
from opsloop.aiops.nab.scoring import CorpusScore, score_corpus
from opsloop.errors import AIOpsError

__all__ = [
    "PUBLISHED_SUBSET_CATEGORIES",
    "PUBLISHED_SUBSET_FILES",
    "PUBLISHED_SUBSET_SCORES",
    "Scoreboard",
    "ScoreboardRow",
    "render_scoreboard",
    "run_detector",
    "run_nab_benchmark",
    "write_chart",
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
SOURCE_RESULTS = "results"
SOURCE_PUBLISHED = "published"


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


def _detector_name(detector: Detector) -> str:
    for name, cls in DETECTORS.items():
        if type(detector) is cls:
            return name
    return type(detector).__name__


def _run_file(
    detector: Detector, times: npt.NDArray[np.datetime64], values: FloatArray
) -> FloatArray:
    return detector.clone().score_many(values, times)


def run_detector(
    detector: Detector,
    corpus: NabCorpus,
    *,
    workers: int = 1,
    on_file: Callable[[str, int], None] | None = None,
) -> dict[str, FloatArray]:
    """Stream every file of a corpus through a fresh clone of ``detector``.

    Args:
        detector: The detector (its parameters are used; its state is not).
        corpus: The corpus.
        workers: Processes to spread files over (1 runs in this process).
        on_file: Called with each finished file's name and row count (for progress).

    Returns:
        Anomaly scores per file.
    """
    names = list(corpus.files)
    out: dict[str, FloatArray] = {}
    if workers <= 1:
        for name in names:
            f = corpus.files[name]
            out[name] = _run_file(detector, f.timestamps, f.values)
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
                _run_file, detector, corpus.files[name].timestamps, corpus.files[name].values
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
    detectors: Sequence[str | Detector] = ("ensemble",),
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
    chosen = list(profiles) if profiles else list(corpus.profiles)
    unknown = [p for p in chosen if p not in corpus.profiles]
    if unknown:
        raise AIOpsError(f"unknown profile {unknown[0]!r}; profiles: {', '.join(corpus.profiles)}")
    runs = _as_detectors(detectors)
    rows: list[ScoreboardRow] = []
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
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


def render_scoreboard(board: Scoreboard) -> Table:
    """A rich table of the scoreboard."""
    table = Table(
        title=f"NAB scoreboard: {board.files} files, {board.rows_total} rows, "
        f"{board.windows} windows",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("#", justify="right")
    table.add_column("detector", min_width=12, overflow="fold")
    table.add_column("source")
    for p in board.profiles:
        # "reward_low_FP_rate" -> "low_FP": keeps the table readable in 80 columns.
        table.add_column(p.removeprefix("reward_").removesuffix("_rate"), justify="right")
    table.add_column("windows", justify="right")
    table.add_column("FP", justify="right")
    table.add_column("s", justify="right")
    style = {SOURCE_OPSLOOP: "bold green", SOURCE_RESULTS: "cyan", SOURCE_PUBLISHED: "dim"}
    for rank, r in enumerate(board.rows, 1):
        cells = [f"{r.scores[p]:.2f}" if p in r.scores else "" for p in board.profiles]
        windows = f"{r.windows_detected}/{r.windows}" if r.windows is not None else ""
        fps = str(r.false_positives) if r.false_positives is not None else ""
        secs = f"{r.seconds:.1f}" if r.seconds is not None else ""
        table.add_row(
            str(rank), r.detector, r.source, *cells, windows, fps, secs, style=style.get(r.source)
        )
    return table


def write_chart(board: Scoreboard, path: str | Path, profile: str | None = None) -> Path:
    """Save a bar chart of one profile's scores as a PNG.

    Args:
        board: The scoreboard.
        path: Where to write the PNG.
        profile: The profile (default: the first).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profile = profile or board.profiles[0]
    rows = [r for r in board.rows if profile in r.scores]
    rows.sort(key=lambda r: r.scores[profile])
    colors = {SOURCE_OPSLOOP: "#2a9d55", SOURCE_RESULTS: "#3b82c4", SOURCE_PUBLISHED: "#9a9a9a"}
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    try:
        values = [r.scores[profile] for r in rows]
        ax.barh(
            [f"{r.detector} ({r.source})" for r in rows],
            values,
            color=[colors.get(r.source, "#555555") for r in rows],
        )
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel(f"NAB score, {profile} profile (100 = perfect, 0 = never alarms)")
        ax.set_title(f"NAB: {board.files} files, {board.windows} windows")
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out
