"""Leave-one-category-out cross-validation on the NAB slice (and the full subset, slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsloop.aiops.benchmark import find_result_folders, run_detector
from opsloop.aiops.detectors import DEFAULT_DETECTOR, get_detector
from opsloop.aiops.loco import cross_validate_loco, held_out_categories
from opsloop.aiops.nab import NabCorpus, load_results, score_corpus
from opsloop.aiops.nab.scoring import normalized_score
from opsloop.cli.aiops import app
from opsloop.errors import AIOpsError

HELD_OUT = ["artificialWithAnomaly", "realAWSCloudwatch", "realKnownCause"]


def test_categories_without_windows_are_only_ever_tuned_on(nab_slice: Path) -> None:
    corpus = NabCorpus.load(nab_slice)
    assert held_out_categories(corpus) == HELD_OUT


def test_each_fold_is_tuned_on_the_other_categories_and_pooled(nab_slice: Path) -> None:
    grid = {"mad": ({}, {"z_mid": 2.0})}
    numenta = nab_slice / "results" / "numenta"
    report = cross_validate_loco(
        nab_slice, ["mad"], candidates=grid, results=[numenta], progress=False
    )
    assert report.categories == tuple(HELD_OUT)
    assert report.profiles == ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    corpus = NabCorpus.load(nab_slice)
    labels = corpus.labels
    runs = [run_detector(get_detector("mad", **c), corpus) for c in grid["mad"]]
    cost = corpus.profiles["standard"]
    raw = null = perfect = 0.0
    mad = report.row("mad")
    for fold, category in zip(mad.folds["standard"], HELD_OUT, strict=True):
        assert fold.category == category
        test = [n for n, f in corpus.files.items() if f.category == category]
        train = [n for n in corpus.files if n not in test]
        trained = [
            score_corpus({n: r[n] for n in train}, {n: labels[n] for n in train}, cost)
            for r in runs
        ]
        best = max(range(len(runs)), key=lambda i: (trained[i].score, -i))
        assert fold.selected == best
        assert fold.threshold == trained[best].threshold
        held = score_corpus(
            {n: runs[best][n] for n in test},
            {n: labels[n] for n in test},
            cost,
            threshold=trained[best].threshold,
        )
        assert fold.test_score == pytest.approx(held.score)
        raw, null, perfect = (
            raw + held.raw_score,
            null + held.null_score,
            perfect + held.perfect_score,
        )
    assert mad.loco["standard"] == pytest.approx(normalized_score(raw, null, perfect))
    whole = max(score_corpus(r, labels, cost).score for r in runs)
    assert mad.in_sample["standard"] == pytest.approx(whole)
    assert mad.points_per_second is not None and mad.points_per_second > 0
    # Precomputed results go through the same rotations, the threshold their only setting.
    ref = report.row("numenta")
    assert ref.source == "results" and ref.points_per_second is None
    loaded = load_results(numenta, "numenta", corpus)
    assert ref.in_sample["standard"] == pytest.approx(score_corpus(loaded, labels, cost).score)
    assert ref.loco["standard"] <= ref.in_sample["standard"] + 1e-9
    assert (
        json.loads(json.dumps(report.to_dict()))["rows"][0]["detector"] == report.rows[0].detector
    )


def test_loco_refuses_unknown_profiles_and_a_single_category(
    nab_slice: Path, tmp_path: Path
) -> None:
    with pytest.raises(AIOpsError, match="unknown profile"):
        cross_validate_loco(nab_slice, ["mad"], ["nope"], progress=False)
    # A copy of the slice with one category that has windows.
    for sub in ("config", "labels"):
        (tmp_path / sub).mkdir()
        for f in (nab_slice / sub).iterdir():
            (tmp_path / sub / f.name).write_bytes(f.read_bytes())
    for category in ("artificialNoAnomaly", "realKnownCause"):
        (tmp_path / "data" / category).mkdir(parents=True)
        for f in (nab_slice / "data" / category).iterdir():
            (tmp_path / "data" / category / f.name).write_bytes(f.read_bytes())
    with pytest.raises(AIOpsError, match="at least two categories"):
        cross_validate_loco(tmp_path, ["mad"], progress=False)


def test_result_folders_are_found_and_the_cli_runs_loco(nab_slice: Path, tmp_path: Path) -> None:
    assert find_result_folders(nab_slice) == [nab_slice / "results" / "numenta"]
    assert find_result_folders(tmp_path) == []
    runner = CliRunner()
    board = runner.invoke(
        app, ["benchmark", "--nab", str(nab_slice), "-d", "mad", "-p", "standard", "--no-progress"]
    )
    assert board.exit_code == 0, board.output
    assert "numenta" in board.output, "the results found in the folder are shown by default"
    bare = runner.invoke(
        app,
        ["benchmark", "--nab", str(nab_slice), "-d", "mad", "--no-others", "--no-progress"],
    )
    assert bare.exit_code == 0 and "numenta" not in bare.output
    out = tmp_path / "loco.json"
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--nab",
            str(nab_slice),
            "-d",
            "mad",
            "-p",
            "standard",
            "--cv",
            "--no-progress",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "leave-one-category-out" in result.output
    data = json.loads(out.read_text())
    assert {r["detector"] for r in data["rows"]} == {"mad", "numenta"}
    assert data["categories"] == HELD_OUT


@pytest.mark.slow
def test_reference_detector_loco_on_the_full_subset(nab_full: Path) -> None:
    """The reference detector's published results through the protocol: its in-sample score
    is the published one, and carrying a threshold to an unseen category costs it a little."""
    reference = next(p for p in find_result_folders(nab_full) if p.name == "numenta")
    report = cross_validate_loco(nab_full, [], results=[reference], progress=False)
    row = report.row("numenta")
    assert row.in_sample == pytest.approx(
        {"standard": 66.59, "reward_low_FP_rate": 60.81, "reward_low_FN_rate": 71.06}, abs=0.01
    )
    assert row.loco == pytest.approx(
        {"standard": 65.38, "reward_low_FP_rate": 57.35, "reward_low_FN_rate": 68.96}, abs=0.01
    )
    assert report.categories == tuple(HELD_OUT)


@pytest.mark.slow
def test_default_detector_beats_the_best_published_subset_score_out_of_sample(
    nab_full: Path,
) -> None:
    """The default detector, its threshold chosen on the other categories each time: above
    ARTime's in-sample 67.85, with NAB's hints and as the monitoring loop runs it (none)."""
    for hints in (True, False):
        report = cross_validate_loco(
            nab_full, [DEFAULT_DETECTOR], profiles=["standard"], progress=False, hints=hints
        )
        assert report.row(DEFAULT_DETECTOR).loco["standard"] > 67.85, hints


@pytest.mark.slow
def test_the_default_detector_alerts_at_the_threshold_its_benchmark_chose(
    nab_full: Path,
) -> None:
    """The loop's default threshold is the one NAB's standard profile picks on the whole
    subset for the default detector run as the loop runs it: the benchmark measures the
    operating point the loop alerts at."""
    corpus = NabCorpus.load(nab_full)
    detector = get_detector(DEFAULT_DETECTOR)
    run = run_detector(detector, corpus, hints=False)
    cost = corpus.profiles["standard"]
    best = score_corpus(run, corpus.labels, cost)
    shipped = score_corpus(run, corpus.labels, cost, threshold=detector.alert_threshold)
    assert detector.alert_threshold == pytest.approx(best.threshold, abs=0.005)
    assert shipped.score == pytest.approx(best.score, abs=0.2)
