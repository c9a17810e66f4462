"""Trials fitted in batches through a trial backend (ask and tell) give the results of
sequential tuning where the sampler allows: batches of one trial always, larger batches
while TPE still samples at random (its first ten trials)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from opsloop.ml.features import infer_feature_types
from opsloop.ml.split import split_dataset
from opsloop.ml.tune import InProcessTrials, TuneResult, tune_candidates

from .conftest import classification_frame


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    part, _ = split_dataset(
        classification_frame(400), target="y", problem_type="classification", time_column="when"
    )
    return part


def _tune(train: pd.DataFrame, trials: int, **kwargs: Any) -> TuneResult:
    return tune_candidates(
        train,
        target="y",
        problem_type="classification",
        metric="roc_auc",
        feature_spec=infer_feature_types(train, "y", time_column="when"),
        candidates=["logistic_regression"],
        trials=trials,
        timeout_s=None,
        cv=2,
        n_jobs=1,
        progress=False,
        **kwargs,
    )


def _trials(result: TuneResult) -> list[tuple[int, dict[str, Any], float | None]]:
    return [(t.number, t.params, t.score) for t in result.trials]


def test_batches_of_one_equal_sequential_past_the_random_start(train: pd.DataFrame) -> None:
    sequential = _tune(train, 13)
    batched = _tune(train, 13, trial_backend=lambda folds: InProcessTrials(folds, workers=2))
    assert _trials(batched) == _trials(sequential)
    assert batched.best_params == sequential.best_params


def test_larger_batches_equal_sequential_during_the_random_start(train: pd.DataFrame) -> None:
    sequential = _tune(train, 9)
    seen: list[int] = []

    def on_trial(record: Any) -> None:
        seen.append(record.number)

    batched = _tune(
        train, 9, trial_backend=lambda folds: InProcessTrials(folds, workers=8), on_trial=on_trial
    )
    assert _trials(batched) == _trials(sequential)
    assert seen == list(range(9))
