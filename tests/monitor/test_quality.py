"""Model quality over the labelled rows of a window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from opsloop.errors import MonitorError
from opsloop.monitor.quality import LABELLED, quality_metrics
from opsloop.monitor.windows import LABEL, OUTPUT


def _rows(outputs: list[Any], labels: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {OUTPUT: pd.Series(outputs, dtype=object), LABEL: pd.Series(labels, dtype=object)}
    )


def _binary(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    return p, y


def test_binary_classification_matches_scikit_learn_on_labelled_rows_only() -> None:
    p, y = _binary()
    labels: list[Any] = [int(v) for v in y]
    labels[:50] = [None] * 50  # not labelled yet
    rows = _rows([[1 - x, x] for x in p], labels)
    got = quality_metrics(rows, problem_type="classification", classes=[0, 1])
    p_l, y_l = p[50:], y[50:]
    assert got[LABELLED] == 350
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_l, p_l))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_l, (p_l > 0.5).astype(int)))
    assert got["f1"] == pytest.approx(skm.f1_score(y_l, (p_l > 0.5).astype(int)))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_l, np.c_[1 - p_l, p_l]))
    # the same without the classes: 0/1 labels name the two probability columns.
    assert quality_metrics(rows, problem_type="classification") == got


def test_labels_as_json_floats_and_text_classes() -> None:
    p, y = _binary(seed=1)
    as_floats = _rows([[1 - x, x] for x in p], [float(v) for v in y])
    assert quality_metrics(as_floats, problem_type="classification", classes=[0, 1])[
        "roc_auc"
    ] == pytest.approx(skm.roc_auc_score(y, p))
    words = np.where(y == 1, "yes", "no")
    as_text = _rows([[1 - x, x] for x in p], list(words))
    got = quality_metrics(as_text, problem_type="classification", classes=["no", "yes"])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    # without classes, the sorted labels name the columns when there are as many.
    assert quality_metrics(as_text, problem_type="classification") == got


def test_multiclass_and_label_outputs() -> None:
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([1, 1, 1], 300)
    y = np.array([rng.choice(3, p=row) for row in proba])
    rows = _rows(proba.tolist(), y.tolist())
    got = quality_metrics(rows, problem_type="classification", classes=[0, 1, 2])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    # a model without probabilities answers with the class: label metrics only.
    plain = _rows(proba.argmax(axis=1).tolist(), y.tolist())
    only_labels = quality_metrics(plain, problem_type="classification")
    assert set(only_labels) == {"f1", "precision", "recall", "accuracy", LABELLED}
    assert only_labels["accuracy"] == got["accuracy"]


def test_one_class_of_labels_leaves_the_ranking_metrics_out() -> None:
    rows = _rows([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], [1, 1, 1])
    got = quality_metrics(rows, problem_type="classification", classes=[0, 1])
    assert "roc_auc" not in got and "pr_auc" not in got
    assert got["accuracy"] == pytest.approx(2 / 3)


def test_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(10, 2, 200)
    pred = truth + rng.normal(0, 0.5, 200)
    rows = _rows(pred.tolist(), truth.tolist())
    got = quality_metrics(rows, problem_type="regression")
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(truth, pred))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(truth, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(truth, pred))
    assert got[LABELLED] == 200
    assert set(quality_metrics(rows, problem_type="regression", only=["mae"])) == {
        "mae",
        LABELLED,
    }


def test_no_labels_means_only_the_count() -> None:
    rows = _rows([[0.5, 0.5]], [None])
    assert quality_metrics(rows, problem_type="classification") == {LABELLED: 0.0}
    assert quality_metrics(_rows([], []), problem_type="regression") == {LABELLED: 0.0}


@pytest.mark.parametrize(
    ("outputs", "labels", "kwargs", "message"),
    [
        ([[0.5, 0.5], [0.2, 0.8]], [0, 2], {"classes": [0, 1]}, "classes the model does not"),
        ([[0.5, 0.5], [0.1, 0.2, 0.7]], [0, 1], {}, "different lengths"),
        ([[0.2, 0.3, 0.5]] * 2, ["a", "b"], {}, "classes are unknown"),
        ([[0.5, 0.5]], [0], {"classes": [0, 1, 2]}, "3 classes but its outputs hold 2"),
    ],
)
def test_outputs_and_labels_that_do_not_fit(
    outputs: list[Any], labels: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(MonitorError, match=message):
        quality_metrics(_rows(outputs, labels), problem_type="classification", **kwargs)


def test_bad_regression_values_and_problem_type() -> None:
    with pytest.raises(MonitorError, match="must be numbers"):
        quality_metrics(_rows(["high"], [1.0]), problem_type="regression")
    with pytest.raises(MonitorError, match="unknown problem type 'ranking'"):
        quality_metrics(_rows([1.0], [1.0]), problem_type="ranking")
