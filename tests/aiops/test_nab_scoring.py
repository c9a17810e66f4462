"""NAB scorer: hand-made cases with known scores, the slice, and the full subset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from opsloop.aiops.nab import (
    STANDARD_PROFILES,
    FileLabels,
    NabCorpus,
    label_rows,
    load_profiles,
    load_results,
    normalized_score,
    optimize_threshold,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
)
from opsloop.errors import AIOpsError, DataError

STANDARD = STANDARD_PROFILES["standard"]
S_LEFT = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # S(-1), a detection at a window's first row


def one_window(n_rows: int = 1000, window: tuple[int, int] = (400, 499)) -> FileLabels:
    return label_rows("case.csv", [window], n_rows)


def spikes(n_rows: int, rows: list[int]) -> np.ndarray:
    scores = np.zeros(n_rows)
    scores[rows] = 1.0
    return scores


# --- the scaled sigmoid and probationary period -------------------------------------------


def test_scaled_sigmoid_matches_nab_reference_points() -> None:
    values = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 2.999, 3.0, 50.0]))
    assert values[0] == pytest.approx(0.98661, abs=1e-5)
    assert values[1] == pytest.approx(0.84828, abs=1e-5)
    assert values[2] == 0.0
    assert values[3] == pytest.approx(-0.98661, abs=1e-5)
    assert -1.0 < values[4] < -0.9999
    assert values[5] == -1.0
    assert values[6] == -1.0


@pytest.mark.parametrize(
    ("rows", "expected"), [(4032, 604), (1882, 282), (5000, 750), (22695, 750), (10, 1)]
)
def test_probationary_length_is_15_percent_capped_at_750(rows: int, expected: int) -> None:
    assert probationary_length(rows) == expected


# --- hand-made files with known scores ----------------------------------------------------


def test_perfect_detector_scores_100_and_null_detector_scores_0() -> None:
    labels = {"a.csv": one_window(), "b.csv": label_rows("b.csv", [(300, 349), (700, 799)], 1000)}
    perfect = {"a.csv": spikes(1000, [400]), "b.csv": spikes(1000, [300, 700])}
    null = {name: np.zeros(1000) for name in labels}
    for profile in STANDARD_PROFILES.values():
        best = score_corpus(perfect, labels, profile)
        assert best.score == pytest.approx(100.0)
        assert best.raw_score == pytest.approx(3 * profile.tp_weight)
        assert best.null_score == pytest.approx(-3 * profile.fn_weight)
        assert score_corpus(null, labels, profile).score == pytest.approx(0.0)


def test_detection_reward_depends_on_position_in_window() -> None:
    labels = one_window()
    first = score_file(labels, spikes(1000, [400]), 0.5, STANDARD).raw_score
    middle = score_file(labels, spikes(1000, [450]), 0.5, STANDARD).raw_score
    last = score_file(labels, spikes(1000, [499]), 0.5, STANDARD).raw_score
    assert first == pytest.approx(1.0)
    # Row 450 of a 100-row window ending at 499: position -(499 - 450 + 1) / 100 = -0.5.
    assert middle == pytest.approx(float(scaled_sigmoid(-0.5)) / S_LEFT)
    assert last == pytest.approx(float(scaled_sigmoid(-0.01)) / S_LEFT)
    assert first > middle > last > 0


def test_only_the_first_detection_in_a_window_counts() -> None:
    labels = one_window()
    once = score_file(labels, spikes(1000, [420]), 0.5, STANDARD)
    many = score_file(labels, spikes(1000, [420, 421, 450, 499]), 0.5, STANDARD)
    assert many.raw_score == pytest.approx(once.raw_score)
    assert (many.tp, once.tp) == (4, 1)
    assert many.windows_detected == 1


def test_missed_window_costs_fn_weight() -> None:
    result = score_file(one_window(), np.zeros(1000), 0.5, STANDARD_PROFILES["reward_low_FN_rate"])
    assert result.raw_score == -2.0
    assert (result.windows_detected, result.windows_missed) == (0, 1)


def test_false_positive_costs_depend_on_distance_from_previous_window() -> None:
    labels = one_window()
    before = score_file(labels, spikes(1000, [200]), 0.5, STANDARD).raw_score + 1.0
    just_after = score_file(labels, spikes(1000, [500]), 0.5, STANDARD).raw_score + 1.0
    far_after = score_file(labels, spikes(1000, [900]), 0.5, STANDARD).raw_score + 1.0
    # Before any window an FP costs the full weight; right after a window it is nearly free
    # (distance 1 / (width - 1)); three widths later it costs the full weight again.
    assert before == pytest.approx(-0.11)
    assert just_after == pytest.approx(0.11 * float(scaled_sigmoid(1 / 99)))
    assert -0.01 < just_after < 0
    assert far_after == pytest.approx(-0.11)


def test_probationary_rows_are_neither_rewarded_nor_penalised() -> None:
    labels = one_window()
    assert labels.probation == 150
    in_probation = score_file(labels, spikes(1000, [10, 149]), 0.5, STANDARD)
    assert in_probation.raw_score == -1.0
    assert in_probation.fp == 0


def test_window_entirely_in_probation_is_not_scored_but_counts_as_perfect() -> None:
    labels = label_rows("p.csv", [(10, 50)], 1000)
    assert labels.scored_windows == 0
    result = score_corpus({"p.csv": np.zeros(1000)}, {"p.csv": labels}, STANDARD)
    # Null raw is 0 (nothing can be missed) while perfect is one window: the null detector is 0.
    assert result.null_score == 0.0
    assert result.perfect_score == 1.0
    assert result.score == 0.0


def test_threshold_sweep_matches_brute_force_over_all_thresholds() -> None:
    rng = np.random.default_rng(7)
    files = []
    for k, windows in enumerate([[(300, 379)], [(200, 239), (600, 699)], []]):
        labels = label_rows(f"f{k}.csv", windows, 900)
        # Two decimals make ties, which the sweep must handle as one threshold.
        scores = np.round(rng.random(900) ** 6, 2)
        for left, _ in windows:
            scores[left + 5] = 0.97
        files.append((labels, scores))
    for profile in STANDARD_PROFILES.values():
        best = optimize_threshold(files, profile)
        candidates = np.unique(np.concatenate([s for _, s in files]))
        brute = max(
            sum(score_file(lab, s, float(t), profile).raw_score for lab, s in files)
            for t in [*candidates, 2.0]
        )
        at_best = sum(score_file(lab, s, best.threshold, profile).raw_score for lab, s in files)
        assert best.raw_score == pytest.approx(brute, abs=1e-9)
        assert at_best == pytest.approx(brute, abs=1e-9)


def test_ties_prefer_the_highest_threshold() -> None:
    labels = one_window()
    scores = np.zeros(1000)
    scores[400] = 0.9
    scores[450] = 0.5  # a later detection in the same window: 0.5 scores the same as 0.9
    best = optimize_threshold([(labels, scores)], STANDARD)
    assert best.threshold == 0.9
    assert best.raw_score == pytest.approx(1.0)


def test_normalized_score_needs_windows() -> None:
    assert normalized_score(5.0, -10.0, 10.0) == 75.0
    with pytest.raises(AIOpsError, match="no anomaly window"):
        normalized_score(0.0, 0.0, 0.0)


# --- input errors -------------------------------------------------------------------------


def test_scores_must_match_rows_and_be_finite() -> None:
    labels = one_window()
    with pytest.raises(DataError, match=r"case\.csv: 999 anomaly scores for 1000 data rows"):
        score_file(labels, np.zeros(999), 0.5, STANDARD)
    bad = np.zeros(1000)
    bad[17] = np.nan
    with pytest.raises(DataError, match="row 17 is not a finite number"):
        score_file(labels, bad, 0.5, STANDARD)


def test_overlapping_or_out_of_range_windows_are_refused() -> None:
    with pytest.raises(AIOpsError, match="inside the previous window"):
        label_rows("x.csv", [(10, 50), (40, 60)], 100)
    with pytest.raises(AIOpsError, match=r"outside 0\.\.99"):
        label_rows("x.csv", [(90, 120)], 100)


def test_missing_results_are_reported(nab_slice: Path) -> None:
    corpus = NabCorpus.load(nab_slice)
    with pytest.raises(DataError, match="no anomaly scores for 1 corpus file"):
        partial = load_results(nab_slice / "results" / "numenta", "numenta", corpus)
        partial.pop("artificialNoAnomaly/art_noisy.csv")
        score_corpus(partial, corpus.labels, STANDARD)


def test_bad_profiles_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1}}}))
    with pytest.raises(DataError, match="profile 'standard': CostMatrix lacks fpWeight"):
        load_profiles(path)
    path.write_text("{\n  oops")
    with pytest.raises(DataError, match=r"profiles\.json:2: invalid JSON"):
        load_profiles(path)


# --- the shipped slice of NAB -------------------------------------------------------------

# Computed once with this scorer on tests/aiops/data/nab_slice (reference detector results).
SLICE_EXPECTED = {
    "standard": (64.66537285326545, 0.632995808339),
    "reward_low_FP_rate": (62.46537285326546, 0.632995808339),
    "reward_low_FN_rate": (69.7769152355103, 0.632995808339),
}


def test_slice_scores_of_the_reference_detector(nab_slice: Path) -> None:
    corpus = NabCorpus.load(nab_slice)
    assert len(corpus.files) == 4
    assert corpus.n_windows == 5
    assert corpus.files["realKnownCause/rogue_agent_key_hold.csv"].labels.windows == (
        (669, 763),
        (1240, 1334),
    )
    results = load_results(nab_slice / "results" / "numenta", "numenta", corpus)
    for name, (score, threshold) in SLICE_EXPECTED.items():
        got = score_corpus(results, corpus.labels, corpus.profiles[name])
        assert got.score == pytest.approx(score, abs=1e-9)
        assert got.threshold == threshold
        assert got.windows_detected == 4
        assert got.fp == 2


def test_time_going_backwards_is_matched_in_file_order(tmp_path: Path) -> None:
    # Some NAB files step back in time; windows are matched to rows in file order.
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    stamps = [f"2024-01-01 00:{m:02d}:00" for m in range(40)]
    stamps[30:33] = ["2024-01-01 00:20:00", "2024-01-01 00:21:00", "2024-01-01 00:22:00"]
    rows = "\n".join(f"{s},{i}" for i, s in enumerate(stamps))
    (tmp_path / "data" / "cat" / "f.csv").write_text("timestamp,value\n" + rows + "\n")
    windows = {"cat/f.csv": [["2024-01-01 00:10:00.000000", "2024-01-01 00:14:00.000000"]]}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    corpus = NabCorpus.load(tmp_path)
    assert corpus.files["cat/f.csv"].labels.windows == ((10, 14),)
    assert set(corpus.profiles) == set(STANDARD_PROFILES)


def test_unreadable_data_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "data" / "cat" / "f.csv").write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,abc\n"
    )
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({"cat/f.csv": []}))
    with pytest.raises(DataError, match=r"f\.csv:3: column 'value': not a number"):
        NabCorpus.load(tmp_path)
    with pytest.raises(DataError, match="not an NAB folder"):
        NabCorpus.load(tmp_path / "nowhere")


# --- the full subset (only where it is available) -----------------------------------------


@pytest.mark.slow
def test_full_subset_reproduces_published_reference_scores(nab_full: Path) -> None:
    corpus = NabCorpus.load(nab_full)
    results_dir = nab_full / "reference_results" / "numenta"
    if not results_dir.is_dir():
        results_dir = nab_full / "results" / "numenta"
    results = load_results(results_dir, "numenta", corpus)
    expected = {"standard": 66.59, "reward_low_FP_rate": 60.81, "reward_low_FN_rate": 71.06}
    for name, published in expected.items():
        got = score_corpus(results, corpus.labels, corpus.profiles[name])
        assert round(got.score, 2) == published
