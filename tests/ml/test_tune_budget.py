"""Cost-aware tuning: a budget stops tuning when spent, and the evaluation report shows the
metric gained per unit of cost across trials."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from opsloop.errors import MLError
from opsloop.ml import split_dataset
from opsloop.ml.evaluate import evaluate_model
from opsloop.ml.tune import TrialRecord, cost_curve
from tests.ml.conftest import classification_frame
from tests.ml.test_tune import _tune

# A price so high that one trial of a fraction of a second spends a budget of 1.
PRICEY = 1e7


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    part, _test = split_dataset(
        classification_frame(300), target="y", problem_type="classification", time_column="when"
    )
    return part


def test_a_spent_budget_stops_tuning_after_each_candidates_first_trial(
    train: pd.DataFrame,
) -> None:
    result = _tune(train, trials=40, max_cost=1.0, vcpu_hour=PRICEY)
    # Each candidate gets its share of the budget and at least one trial; the first trial
    # of each spends its share.
    assert [c.n_trials for c in result.candidates] == [1, 1]
    assert result.stopped_by_cost and result.cost >= 1.0
    assert all(t.cost > 0 for t in result.trials)
    free = _tune(train, trials=4, vcpu_hour=0.0)
    assert len(free.trials) == 4 and free.cost == 0 and not free.stopped_by_cost
    with pytest.raises(MLError, match="max_cost must be positive"):
        _tune(train, max_cost=0.0)


def _trial(score: float | None, cost: float) -> TrialRecord:
    state = "complete" if score is not None else "failed"
    return TrialRecord(
        candidate="c", number=0, params={}, score=score, duration_s=1, state=state, cost=cost
    )


def test_the_cost_curve_and_its_place_in_the_evaluation_report(
    train: pd.DataFrame, tmp_path: Path
) -> None:
    trials = [_trial(0.70, 1.0), _trial(None, 1.0), _trial(0.80, 2.0), _trial(0.75, 1.0)]
    curve = cost_curve(trials, higher_is_better=True)
    assert [p["cost"] for p in curve] == [1.0, 2.0, 4.0, 5.0]
    assert [p["best"] for p in curve] == [0.70, 0.70, 0.80, 0.80]
    assert curve[0]["gain_per_cost"] is None
    assert curve[2]["gain"] == pytest.approx(0.10)
    assert curve[2]["gain_per_cost"] == pytest.approx(0.10 / 3)
    lower = cost_curve([_trial(3.0, 1.0), _trial(2.0, 1.0)], higher_is_better=False)
    assert lower[1]["gain"] == pytest.approx(1.0)

    tuned = _tune(train, trials=3, vcpu_hour=3600.0)  # a vCPU-second costs 1
    summary = tuned.summary()
    assert [p["cost"] for p in summary["cost_curve"]] == pytest.approx(
        list(itertools.accumulate(t.cost for t in tuned.trials))
    )
    result = evaluate_model(
        tuned.model,
        train,
        target="y",
        problem_type="classification",
        out_dir=tmp_path,
        tuning={**summary, "max_cost": 5.0},
    )
    page = (tmp_path / "report.html").read_text()
    assert "metric gained per unit of cost" in page and "budget 5" in page
    assert result.tuning_cost is not None and len(result.tuning_cost) == 3
    unpriced = evaluate_model(
        tuned.model,
        train,
        target="y",
        problem_type="classification",
        out_dir=tmp_path / "free",
        tuning={"cost_curve": cost_curve([_trial(0.7, 0.0)], higher_is_better=True)},
    )
    assert unpriced.tuning_cost is None
    assert "per unit of cost" not in (tmp_path / "free" / "report.html").read_text()
