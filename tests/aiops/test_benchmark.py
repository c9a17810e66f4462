"""The NAB benchmark runner and scoreboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from opsloop.aiops.benchmark import (
    PUBLISHED_SUBSET_SCORES,
    CVReport,
    cross_validate_nab,
    run_detector,
    run_nab_benchmark,
    stratified_folds,
)
from opsloop.aiops.benchmark_render import render_cv_report, render_scoreboard, write_chart
from opsloop.aiops.detectors import DEFAULT_DETECTOR, CADDetector, EnsembleDetector
from opsloop.aiops.nab import NabCorpus, load_results, score_corpus
from opsloop.aiops.nab.scoring import probationary_length
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


def test_without_hints_detectors_run_as_in_the_monitoring_loop(nab_slice: Path) -> None:
    """As NAB does, every detector is told its file's range and probation; without hints (as
    in the monitoring loop) a detector that uses them scores differently."""
    corpus = NabCorpus.load(nab_slice)
    hinted = run_detector(CADDetector(), corpus)
    unhinted = run_detector(CADDetector(), corpus, hints=False, workers=2)
    for name, f in corpus.files.items():
        assert np.array_equal(unhinted[name], CADDetector().score_many(f.values, f.timestamps))
        d = CADDetector()
        d.hint(
            value_range=(float(f.values.min()), float(f.values.max())),
            probation=probationary_length(len(f.values)),
        )
        assert np.array_equal(hinted[name], d.score_many(f.values, f.timestamps))
    assert any(not np.array_equal(hinted[n], unhinted[n]) for n in corpus.files)


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
    board = run_nab_benchmark(nab_full, detectors=[DEFAULT_DETECTOR], workers=2, progress=False)
    ours = board.row(DEFAULT_DETECTOR).scores
    best_published = max(s["standard"] for s in PUBLISHED_SUBSET_SCORES.values())
    assert ours["standard"] > best_published
    htm = PUBLISHED_SUBSET_SCORES["Numenta HTM"]
    for profile, published in htm.items():
        assert ours[profile] > published


# --- Out-of-sample check -------------------------------------------------------------------

_SLICE = Path(__file__).parent / "data" / "nab_slice"
_TWO_SETTINGS: list[dict[str, Any]] = [{}, {"suppress_factor": 0.6, "smooth_weight": 0.3}]


@pytest.fixture(scope="module")
def cv_report() -> CVReport:
    return cross_validate_nab(
        _SLICE, candidates=_TWO_SETTINGS, folds=2, repeats=1, seed=3, progress=False
    )


def test_cross_validation_report_structure(cv_report: CVReport) -> None:
    corpus = NabCorpus.load(_SLICE)
    assert cv_report.detector == "ensemble"
    assert cv_report.profile == "standard"
    assert cv_report.candidates == tuple(_TWO_SETTINGS)
    assert cv_report.reference == "numenta"
    assert len(cv_report.in_sample) == 2
    assert cv_report.reference_in_sample == pytest.approx(SLICE_EXPECTED["standard"][0])
    assert [(f.repeat, f.fold) for f in cv_report.folds] == [(0, 0), (0, 1)]
    # The held-out folds of a repeat cover every file exactly once.
    held = [n for f in cv_report.folds for n in f.test_files]
    assert sorted(held) == sorted(corpus.files)
    for fold in cv_report.folds:
        assert fold.selected in (0, 1)
        assert fold.reference_threshold is not None and fold.reference_test_score is not None
        for value in (fold.test_score, fold.default_test_score, fold.reference_test_score):
            assert np.isfinite(value) and -100.0 <= value <= 100.0
    for summary in (cv_report.held_out, cv_report.default_held_out, cv_report.reference_held_out):
        assert summary is not None
        assert summary["min"] <= summary["mean"] <= summary["max"]
        assert summary["min"] >= -100.0 and summary["max"] <= 100.0
    assert cv_report.to_dict()["folds"][1]["test_files"] == list(cv_report.folds[1].test_files)


def test_held_out_scores_use_only_the_training_files(cv_report: CVReport) -> None:
    corpus = NabCorpus.load(_SLICE)
    profile = corpus.profiles["standard"]
    runs = [run_detector(EnsembleDetector(**c), corpus) for c in _TWO_SETTINGS]
    reference = load_results(_SLICE / "results" / "numenta", "numenta", corpus)

    def score(results: dict[str, Any], names: list[str], threshold: float | None = None) -> Any:
        return score_corpus(
            {n: results[n] for n in names},
            {n: corpus.labels[n] for n in names},
            profile,
            threshold=threshold,
        )

    for fold in cv_report.folds:
        test = list(fold.test_files)
        train = [n for n in corpus.files if n not in test]
        trained = [score(r, train) for r in runs]
        assert trained[fold.selected].score == max(t.score for t in trained)
        assert fold.train_score == pytest.approx(trained[fold.selected].score)
        assert fold.threshold == trained[fold.selected].threshold
        expected = score(runs[fold.selected], test, fold.threshold).score
        assert fold.test_score == pytest.approx(expected)
        assert fold.default_test_score == pytest.approx(
            score(runs[0], test, trained[0].threshold).score
        )
        ref_threshold = score(reference, train).threshold
        assert fold.reference_threshold == ref_threshold
        assert fold.reference_test_score == pytest.approx(
            score(reference, test, ref_threshold).score
        )


def test_cross_validation_table(cv_report: CVReport) -> None:
    console = Console(width=120, record=True)
    console.print(render_cv_report(cv_report))
    text = console.export_text()
    assert "1 x 2-fold" in text
    assert "ensemble (selected per fold)" in text
    assert "numenta (reference)" in text
    assert f"{cv_report.held_out['mean']:.2f}" in text
    assert "settings chosen:" in text


def test_folds_are_stratified_seeded_and_balanced() -> None:
    files = [f"{c}/{i}.csv" for c, n in (("a", 7), ("b", 4), ("c", 1)) for i in range(n)]
    cats = [f.split("/")[0] for f in files]
    first = stratified_folds(files, cats, 3, np.random.default_rng(5))
    again = stratified_folds(files, cats, 3, np.random.default_rng(5))
    other = stratified_folds(files, cats, 3, np.random.default_rng(6))
    assert first == again
    assert first != other
    assert sorted(n for f in first for n in f) == sorted(files)
    sizes = [len(f) for f in first]
    assert max(sizes) - min(sizes) <= 1
    for category, total in (("a", 7), ("b", 4)):
        counts = [sum(n.startswith(category + "/") for n in f) for f in first]
        assert max(counts) - min(counts) <= 1 and sum(counts) == total


def test_bad_cross_validation_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AIOpsError, match="folds must be between 2 and the number of files"):
        cross_validate_nab(_SLICE, candidates=[{}], folds=1, progress=False)
    with pytest.raises(AIOpsError, match=r"number of files \(4\), got 5"):
        cross_validate_nab(_SLICE, candidates=[{}], folds=5, progress=False)
    with pytest.raises(AIOpsError, match="unknown profile 'cheap'"):
        cross_validate_nab(_SLICE, candidates=[{}], profile="cheap", progress=False)
    with pytest.raises(AIOpsError, match="at least one candidate"):
        cross_validate_nab(_SLICE, candidates=[], progress=False)
    with pytest.raises(AIOpsError, match="repeats must be at least 1"):
        cross_validate_nab(_SLICE, candidates=[{}], repeats=0, progress=False)
    with pytest.raises(AIOpsError, match="no parameter 'magic'"):
        cross_validate_nab(_SLICE, candidates=[{"magic": 1}], progress=False)
    with pytest.raises(DataError, match=r"numenta_art_noisy\.csv: file not found"):
        cross_validate_nab(_SLICE, candidates=[{}], reference=tmp_path / "numenta", progress=False)
    # Four held-out folds of one file each: the windowless file cannot be scored alone.
    with pytest.raises(AIOpsError, match="held-out files have no anomaly window"):
        cross_validate_nab(_SLICE, candidates=[{}], folds=4, repeats=1, progress=False)


def test_benchmark_script_prints_the_cross_validation(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "benchmarks" / "nab.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(_SLICE),
            "-d",
            "ewma",
            "--cv",
            "--repeats",
            "1",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    assert "NAB scoreboard: 4 files" in done.stdout
    assert "NAB out-of-sample check" in done.stdout
    assert "held-out mean: ensemble" in done.stdout
    saved = json.loads((tmp_path / "nab_cv.json").read_text(encoding="utf-8"))
    assert saved["repeats"] == 1 and len(saved["folds"]) == 2
