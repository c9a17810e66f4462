from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from rich.console import Console
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from opsloop.errors import DataError, MLError
from opsloop.ml import (
    Candidate,
    TrialRecord,
    TuneResult,
    infer_feature_types,
    register_candidate,
    render_tune_table,
    score_model,
    split_dataset,
    tune_candidates,
    unregister_candidate,
)
from opsloop.ml import tune as tune_module

from .conftest import classification_frame

SEEN: list[dict[str, float]] = []


class RecordingClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the class shares, and records what every fit was given."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def fit(self, x: np.ndarray, y: np.ndarray) -> RecordingClassifier:
        if self.fail:
            raise ValueError("this trial is meant to fail")
        SEEN.append({"rows": len(x), "max_abs": float(np.abs(x).max())})
        self.classes_, counts = np.unique(y, return_counts=True)
        self.shares_ = counts / counts.sum()
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        # A touch of signal from the first column keeps roc_auc defined and varying.
        base = np.tile(self.shares_, (len(x), 1))
        base[:, 1] = np.clip(base[:, 1] + 0.01 * np.tanh(x[:, 0]), 0, 1)
        base[:, 0] = 1 - base[:, 1]
        return base

    def predict(self, x: np.ndarray) -> np.ndarray:
        labels: np.ndarray = self.classes_[self.predict_proba(x).argmax(axis=1)]
        return labels


def _recorder(fail: bool) -> Candidate:
    return Candidate(
        name="failing" if fail else "recorder",
        summary="test double",
        suggest=lambda trial, ptype: {"k": trial.suggest_int("k", 1, 3)},
        make=lambda ptype, params, seed, n_jobs: RecordingClassifier(fail=fail),
        defaults=lambda ptype: {"k": 1},
    )


@pytest.fixture
def recorders() -> Iterator[None]:
    register_candidate(_recorder(False))
    register_candidate(_recorder(True))
    SEEN.clear()
    yield
    unregister_candidate("recorder")
    unregister_candidate("failing")


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_dataset(
        classification_frame(600), target="y", problem_type="classification", time_column="when"
    )


def _tune(train: pd.DataFrame, **kwargs: Any) -> TuneResult:
    spec = infer_feature_types(train, "y", time_column="when")
    options: dict[str, Any] = {
        "target": "y",
        "problem_type": "classification",
        "metric": "roc_auc",
        "feature_spec": spec,
        "candidates": ["logistic_regression", "hist_gradient_boosting"],
        "trials": 4,
        "timeout_s": None,
        "n_jobs": 1,
        "progress": False,
    }
    options.update(kwargs)
    return tune_candidates(train, **options)


def test_tuning_reports_every_trial_and_refits_the_best(
    parts: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = parts
    seen: list[TrialRecord] = []
    result = _tune(train, on_trial=seen.append)
    assert [(t.candidate, t.number) for t in seen] == [
        ("logistic_regression", 0),
        ("logistic_regression", 1),
        ("hist_gradient_boosting", 0),
        ("hist_gradient_boosting", 1),
    ]
    assert seen == result.trials
    for record in seen:
        assert record.state == "complete" and record.score is not None
        assert len(record.fold_scores) == 3 and record.duration_s > 0
        assert record.params
    # The first trial of each candidate is its default parameters.
    assert seen[0].params == {"C": 1.0, "class_weight": None}
    best = max(result.candidates, key=lambda c: c.best_score or 0)
    assert result.best_candidate == best.candidate
    assert result.best_score == best.best_score
    assert result.train_rows == result.tune_rows == len(train)

    assert isinstance(result.model, Pipeline)
    assert list(result.model.feature_names_in_) == result.feature_columns
    auc = score_model(
        result.model, test, test["y"], metric="roc_auc", problem_type="classification"
    )
    assert auc > 0.75

    dumped = json.loads(result.model_dump_json())
    assert "model" not in dumped and dumped["best_candidate"] == result.best_candidate
    summary = json.loads(json.dumps(result.summary()))
    assert summary["candidates"]["logistic_regression"]["trials"] == 2
    assert summary["candidates"][result.best_candidate]["best_score"] == result.best_score
    assert len(summary["trials"]) == 4 and summary["metric"] == "roc_auc"
    console = Console(record=True, width=160)
    console.print(render_tune_table(result))
    assert result.best_candidate + " *" in console.export_text()


@pytest.mark.slow
def test_same_seed_same_result_in_process_and_in_workers(
    parts: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = parts
    one = _tune(train, candidates=["random_forest"], trials=3)
    # Make every candidate worth the worker processes, so the parallel path runs here.
    monkeypatch.setattr(tune_module, "_PARALLEL_MIN_FOLD_S", 0.0)
    two = _tune(train, candidates=["random_forest"], trials=3, n_jobs=2)
    assert two.candidates[0].parallel and not one.candidates[0].parallel
    # The worker processes are gone when tuning returns: a caller that joins its children
    # before exiting (as multiprocessing does) must not wait for idle workers. Only the
    # resource trackers stay; they end with this process.
    assert multiprocessing.active_children() == []
    workers = [
        p
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    ]
    assert workers == []
    assert [t.params for t in one.trials] == [t.params for t in two.trials]
    assert [t.fold_scores for t in one.trials] == [t.fold_scores for t in two.trials]


def test_tuning_never_sees_the_test_part(recorders: None) -> None:
    df = classification_frame(600)
    # Poison the latest rows: if any of them reached tuning or the refit, these values would
    # dominate the scaled features and the scaler's mean.
    latest = df["when"] >= df["when"].quantile(0.8)
    df.loc[latest, "signal"] = 1e6
    train, test = split_dataset(df, target="y", problem_type="classification", time_column="when")
    assert (test["signal"] == 1e6).all() and (train["signal"] < 1e6).all()

    result = _tune(train, candidates=["recorder"], trials=3, max_tune_rows=300)
    assert result.tune_rows == 300
    # Every cross-validation fit saw two thirds of the 300-row sample of the training part.
    assert [s["rows"] for s in SEEN[:-1]] == [200] * 9
    assert max(s["max_abs"] for s in SEEN) < 50
    # The refit saw the whole training part, and only it.
    assert SEEN[-1]["rows"] == len(train)
    scaler = result.model.named_steps["preprocess"].named_transformers_["numeric"]["scale"]
    signal_at = result.model.named_steps["preprocess"].transformers_[0][2].index("signal")
    assert scaler.mean_[signal_at] == pytest.approx(train["signal"].mean())


def test_failed_trials_are_reported_and_the_rest_goes_on(
    parts: tuple[pd.DataFrame, pd.DataFrame], recorders: None
) -> None:
    train, _ = parts
    seen: list[TrialRecord] = []
    result = _tune(train, candidates=["failing", "recorder"], trials=4, on_trial=seen.append)
    failed = [t for t in seen if t.candidate == "failing"]
    assert len(failed) == 2
    assert all(t.state == "failed" and t.score is None for t in failed)
    assert failed[0].error == "ValueError: this trial is meant to fail"
    assert result.best_candidate == "recorder"
    assert result.candidates[0].n_failed == 2 and result.candidates[0].best_score is None

    with pytest.raises(MLError, match="every tuning trial failed; first error: ValueError"):
        _tune(train, candidates=["failing"], trials=2)


def test_time_budget_is_shared_and_each_candidate_gets_a_trial(
    parts: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, _ = parts
    result = _tune(train, trials=400, timeout_s=1.0)
    assert len(result.candidates) == 2
    assert all(1 <= c.n_trials < 200 for c in result.candidates)
    assert all(c.budget_s is not None and c.budget_s <= 1.0 for c in result.candidates)


def test_regression_minimises_rmse() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=300), "g": rng.choice(["a", "b"], size=300)})
    df["target"] = 2 * df["x"] + (df["g"] == "a") + rng.normal(scale=0.3, size=300)
    spec = infer_feature_types(df, "target")
    result = tune_candidates(
        df,
        target="target",
        problem_type="regression",
        metric="rmse",
        feature_spec=spec,
        candidates=["linear", "random_forest"],
        trials=4,
        timeout_s=None,
        n_jobs=1,
        progress=False,
    )
    assert not result.higher_is_better
    scores = {c.candidate: c.best_score for c in result.candidates}
    assert result.best_score == min(s for s in scores.values() if s is not None)
    assert scores["linear"] is not None and scores["linear"] < 0.4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metric": "rmse"}, MLError, "unknown metric 'rmse' for classification"),
        ({"candidates": []}, MLError, "no model candidates"),
        ({"candidates": ["linear", "linear"]}, MLError, "lists a candidate twice"),
        ({"candidates": ["svm"]}, MLError, "unknown model candidate 'svm'"),
        ({"trials": 0}, MLError, "trials must be at least 1"),
        ({"timeout_s": 0}, MLError, "timeout_s must be positive"),
        ({"cv": 1}, MLError, "at least 2 folds"),
    ],
)
def test_bad_settings_fail_before_any_work(
    parts: tuple[pd.DataFrame, pd.DataFrame], kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        _tune(parts[0], **kwargs)


def test_training_part_problems_are_data_errors(parts: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = parts
    spec = infer_feature_types(train, "y", time_column="when")
    with pytest.raises(DataError, match="no values at all in the training part: noise"):
        tune_candidates(
            train.assign(noise=np.nan),
            target="y",
            problem_type="classification",
            metric="roc_auc",
            feature_spec=spec,
            progress=False,
        )
    with pytest.raises(MLError, match="candidate 'xgboost' cannot train on target 'y'"):
        _tune(train.assign(y=train["y"].map({0: "stay", 1: "leave"})), candidates=["xgboost"])
