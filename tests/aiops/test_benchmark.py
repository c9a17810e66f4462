"""The NAB benchmark runner and scoreboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from opsloop.aiops.benchmark import (
    PUBLISHED_SUBSET_SCORES,
    render_scoreboard,
    run_detector,
    run_nab_benchmark,
    write_chart,
)
from opsloop.aiops.detectors import EnsembleDetector
from opsloop.aiops.nab import NabCorpus
from opsloop.errors import AIOpsError, DataError

from .test_nab_scoring import SLICE_EXPECTED


def test_scoreboard_ranks_detectors_and_precomputed_results(nab_slice: Path) -> None:
    board = run_nab_benchmark(
        nab_slice,
        detectors=["ensemble", "ewma"],
        results=[nab_slice / "results" / "numenta"],
        progress=False,
    )
    assert board.files == 4
    assert board.windows == 5
    assert board.profiles == ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    assert [r.source for r in board.rows].count("published") == 0  # not NAB's subset
    numenta = board.row("numenta")
    assert numenta.source == "results"
    for profile, (score, _) in SLICE_EXPECTED.items():
        assert numenta.scores[profile] == pytest.approx(score)
    ensemble = board.row("ensemble")
    assert ensemble.source == "opsloop"
    assert ensemble.params == EnsembleDetector().get_params()
    assert ensemble.seconds is not None and ensemble.seconds > 0
    assert ensemble.windows == 5
    firsts = [r.scores["standard"] for r in board.rows]
    assert firsts == sorted(firsts, reverse=True)
    best = board.best()
    assert best is not None and best.scores["standard"] == firsts[0]
    assert board.to_dict()["rows"][0]["detector"] == board.rows[0].detector


def test_published_figures_can_be_shown_and_profiles_chosen(nab_slice: Path) -> None:
    board = run_nab_benchmark(
        nab_slice,
        detectors=["mad"],
        profiles=["reward_low_FN_rate"],
        published=True,
        progress=False,
    )
    assert board.profiles == ("reward_low_FN_rate",)
    published = {r.detector for r in board.rows if r.source == "published"}
    # Only detectors with a published figure for that profile are shown.
    assert published == {n for n, s in PUBLISHED_SUBSET_SCORES.items() if "reward_low_FN_rate" in s}


def test_parallel_run_gives_the_same_scores(nab_slice: Path) -> None:
    corpus = NabCorpus.load(nab_slice)
    serial = run_detector(EnsembleDetector(), corpus)
    parallel = run_detector(EnsembleDetector(), corpus, workers=2)
    assert list(serial) == list(parallel)
    for name in serial:
        assert np.array_equal(serial[name], parallel[name])


def test_table_and_chart(nab_slice: Path, tmp_path: Path) -> None:
    board = run_nab_benchmark(nab_slice, detectors=["ewma"], published=True, progress=False)
    console = Console(width=80, record=True)
    console.print(render_scoreboard(board))
    text = console.export_text()
    assert "NAB scoreboard: 4 files" in text
    assert "ARTime" in text and "67.85" in text
    assert "ewma" in text
    chart = write_chart(board, tmp_path / "out" / "nab.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_are_refused(nab_slice: Path, tmp_path: Path) -> None:
    with pytest.raises(AIOpsError, match="unknown profile 'cheap'"):
        run_nab_benchmark(nab_slice, profiles=["cheap"], progress=False)
    with pytest.raises(AIOpsError, match="unknown detector 'magic'"):
        run_nab_benchmark(nab_slice, detectors=["magic"], progress=False)
    with pytest.raises(AIOpsError, match="listed twice"):
        run_nab_benchmark(nab_slice, detectors=["mad", "mad"], progress=False)
    with pytest.raises(DataError, match=r"numenta_art_noisy\.csv: file not found"):
        run_nab_benchmark(nab_slice, detectors=[], results=[tmp_path / "numenta"], progress=False)


@pytest.mark.slow
def test_default_detector_beats_every_published_detector_on_the_subset(nab_full: Path) -> None:
    board = run_nab_benchmark(nab_full, detectors=["ensemble"], workers=2, progress=False)
    ours = board.row("ensemble").scores
    best_published = max(s["standard"] for s in PUBLISHED_SUBSET_SCORES.values())
    assert ours["standard"] > best_published
    htm = PUBLISHED_SUBSET_SCORES["Numenta HTM"]
    for profile, published in htm.items():
        assert ours[profile] > published
