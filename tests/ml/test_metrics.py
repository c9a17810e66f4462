from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from opsloop.errors import MLError
from opsloop.ml import METRICS, compute_metrics, get_metric, is_improvement, metric_direction


def test_directions() -> None:
    assert METRICS["classification"]["roc_auc"].higher_is_better
    assert not METRICS["classification"]["log_loss"].higher_is_better
    assert not METRICS["regression"]["rmse"].higher_is_better
    assert METRICS["regression"]["r2"].higher_is_better
    assert metric_direction("mae") is False
    assert is_improvement(0.9, 0.8, "roc_auc")
    assert is_improvement(1.0, 2.0, "rmse")
    assert not is_improvement(2.0, 1.0, "rmse")


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(
        MLError, match="unknown metric 'auc' for classification; known metrics: roc_auc"
    ):
        get_metric("auc", "classification")
    with pytest.raises(MLError, match="unknown metric 'auc'; known metrics:"):
        metric_direction("auc")


def test_binary_metrics_use_the_last_class_as_positive() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes", "no"])
    proba_yes = np.array([0.2, 0.9, 0.4, 0.3, 0.8, 0.6])
    proba = np.column_stack([1 - proba_yes, proba_yes])
    out = compute_metrics(y, problem_type="classification", proba=proba, classes=["no", "yes"])
    positive = y == "yes"
    pred = np.where(proba_yes >= 0.5, "yes", "no")
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(positive, proba_yes))
    assert out["pr_auc"] == pytest.approx(skm.average_precision_score(positive, proba_yes))
    assert out["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="yes"))
    assert out["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="yes"))
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["no", "yes"]))
    assert set(out) == set(METRICS["classification"])


def test_multiclass_metrics_are_macro_averaged() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice([0, 1, 2], size=90)
    proba = rng.dirichlet([1, 1, 1], size=90)
    out = compute_metrics(y, problem_type="classification", proba=proba, classes=[0, 1, 2])
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    pred = proba.argmax(axis=1)
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


def test_labels_only_give_label_metrics() -> None:
    out = compute_metrics([0, 1, 1], problem_type="classification", y_pred=[0, 1, 0])
    assert set(out) == {"f1", "precision", "recall", "accuracy"}


def test_unseen_class_is_an_error() -> None:
    with pytest.raises(MLError, match="classes the model does not know"):
        compute_metrics([0, 1, 2], problem_type="classification", y_pred=[0, 1, 1], classes=[0, 1])


def test_regression_metrics() -> None:
    out = compute_metrics([1.0, 2.0, 3.0], problem_type="regression", y_pred=[1.0, 2.0, 5.0])
    assert out["mae"] == pytest.approx(2 / 3)
    assert out["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert out["r2"] == pytest.approx(1 - 4 / 2)
