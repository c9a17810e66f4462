"""Metrics per problem type, with the direction in which each one improves.

Tuning, evaluation and gates all score through :func:`compute_metrics`, so a metric means the
same thing at every step (same positive class, same averaging).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from opsloop.errors import MLError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

__all__ = [
    "METRICS",
    "PROBLEM_TYPES",
    "MetricInfo",
    "ProblemType",
    "check_problem_type",
    "compute_metrics",
    "get_metric",
    "is_improvement",
    "metric_direction",
    "score_model",
]

ProblemType = Literal["classification", "regression"]
PROBLEM_TYPES: tuple[ProblemType, ...] = ("classification", "regression")


class MetricInfo(BaseModel):
    """One metric and the direction in which it improves."""

    model_config = ConfigDict(frozen=True)

    name: str
    problem_type: ProblemType
    higher_is_better: bool
    needs_proba: bool
    description: str


def _info(
    name: str, problem_type: ProblemType, higher: bool, proba: bool, description: str
) -> MetricInfo:
    return MetricInfo(
        name=name,
        problem_type=problem_type,
        higher_is_better=higher,
        needs_proba=proba,
        description=description,
    )


METRICS: dict[ProblemType, dict[str, MetricInfo]] = {
    "classification": {
        m.name: m
        for m in (
            _info("roc_auc", "classification", True, True, "area under the ROC curve"),
            _info("pr_auc", "classification", True, True, "average precision (area under PR)"),
            _info("f1", "classification", True, False, "F1 score of the positive class"),
            _info("precision", "classification", True, False, "precision of the positive class"),
            _info("recall", "classification", True, False, "recall of the positive class"),
            _info("accuracy", "classification", True, False, "share of correct predictions"),
            _info("log_loss", "classification", False, True, "cross-entropy of probabilities"),
        )
    },
    "regression": {
        m.name: m
        for m in (
            _info("rmse", "regression", False, False, "root mean squared error"),
            _info("mae", "regression", False, False, "mean absolute error"),
            _info("r2", "regression", True, False, "coefficient of determination"),
        )
    },
}
"""Known metrics: ``METRICS[problem_type][name]``. Multiclass targets use macro averages."""


def check_problem_type(problem_type: str) -> ProblemType:
    """Return ``problem_type`` if it is known, else raise :class:`MLError`."""
    if problem_type == "classification":
        return "classification"
    if problem_type == "regression":
        return "regression"
    raise MLError(f"unknown problem type '{problem_type}'; known: {', '.join(PROBLEM_TYPES)}")


def get_metric(name: str, problem_type: str) -> MetricInfo:
    """Look a metric up, raising :class:`MLError` that lists the known ones when it is unknown."""
    known = METRICS[check_problem_type(problem_type)]
    if name not in known:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.spec: each loads only where it is
        # used, so importing this module stays light.
        from opsloop.spec.loader import did_you_mean  # noqa: PLC0415

        raise MLError(
            f"unknown metric '{name}' for {problem_type}; known metrics: {', '.join(known)}"
            f"{did_you_mean(name, known)}"
        )
    return known[name]


def metric_direction(name: str) -> bool:
    """Whether higher is better for ``name``, whatever its problem type."""
    for table in METRICS.values():
        if name in table:
            return table[name].higher_is_better
    known = sorted({m for table in METRICS.values() for m in table})
    raise MLError(f"unknown metric '{name}'; known metrics: {', '.join(known)}")


def is_improvement(new: float, old: float, metric: str) -> bool:
    """Whether ``new`` is strictly better than ``old`` for ``metric``."""
    return new > old if metric_direction(metric) else new < old


def _positive_scores(proba: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return proba[:, 1] if proba.ndim == 2 else proba


def compute_metrics(
    y_true: Sequence[Any] | np.ndarray[Any, Any] | pd.Series,
    *,
    problem_type: str,
    y_pred: Sequence[Any] | np.ndarray[Any, Any] | None = None,
    proba: np.ndarray[Any, Any] | None = None,
    classes: Sequence[Any] | np.ndarray[Any, Any] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, float]:
    """Compute the metrics of one problem type.

    Args:
        y_true: True targets.
        problem_type: ``classification`` or ``regression``.
        y_pred: Predicted labels (classification) or values (regression); for a classifier
            it defaults to the most probable class of ``proba``.
        proba: Class probabilities ``(n, k)`` in the order of ``classes``; without them the
            probability metrics (roc_auc, pr_auc, log_loss) are left out.
        classes: The model's classes; the last one is the positive class of a binary problem.
        only: Restrict to these metric names.

    Returns:
        ``{metric: value}`` as plain floats.
    """
    ptype = check_problem_type(problem_type)
    wanted = list(only) if only is not None else list(METRICS[ptype])
    for name in wanted:
        get_metric(name, ptype)
    y = np.asarray(y_true)
    out: dict[str, float] = {}
    if ptype == "regression":
        if y_pred is None:
            raise MLError("regression metrics need y_pred")
        pred = np.asarray(y_pred)
        for name in wanted:
            if name == "rmse":
                out[name] = float(skm.root_mean_squared_error(y, pred))
            elif name == "mae":
                out[name] = float(skm.mean_absolute_error(y, pred))
            else:
                out[name] = float(skm.r2_score(y, pred))
        return out

    if y_pred is None and (proba is None or classes is None):
        raise MLError("classification metrics need y_pred, or proba together with classes")
    if classes is not None:
        labels = np.asarray(classes)
    else:
        labels = np.unique(np.concatenate([y, np.asarray(y_pred)]))
    if y_pred is not None:
        pred = np.asarray(y_pred)
    else:
        assert proba is not None
        pred = labels[np.argmax(proba, axis=1)]
    unseen = sorted(set(np.unique(y).tolist()) - set(labels.tolist()), key=str)
    if unseen:
        raise MLError(f"target has classes the model does not know: {unseen[:5]}")
    binary = len(labels) == 2
    average: Literal["binary", "macro"] = "binary" if binary else "macro"
    pos_label = labels[-1] if binary else 1
    present = np.unique(y)
    for name in wanted:
        if name == "accuracy":
            out[name] = float(skm.accuracy_score(y, pred))
        elif name in ("f1", "precision", "recall"):
            fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
            out[name] = float(
                fn[name](
                    y, pred, labels=labels, pos_label=pos_label, average=average, zero_division=0
                )
            )
        elif proba is None:
            continue
        elif name in ("roc_auc", "pr_auc"):
            if len(present) < 2:
                raise MLError(f"{name} needs at least two classes in the target, got {present}")
            if binary:
                positive = y == pos_label
                scores = _positive_scores(proba)
                out[name] = float(
                    skm.roc_auc_score(positive, scores)
                    if name == "roc_auc"
                    else skm.average_precision_score(positive, scores)
                )
            elif name == "roc_auc":
                out[name] = float(
                    skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
                )
            else:
                onehot = label_binarize(y, classes=labels)
                out[name] = float(skm.average_precision_score(onehot, proba, average="macro"))
        else:
            out[name] = float(skm.log_loss(y, proba, labels=labels))
    return out


def score_model(
    model: Any, x: pd.DataFrame | np.ndarray[Any, Any], y: Any, *, metric: str, problem_type: str
) -> float:
    """Score a fitted estimator on one metric, the way evaluation does."""
    info = get_metric(metric, problem_type)
    classes = getattr(model, "classes_", None)
    proba = model.predict_proba(x) if info.needs_proba else None
    pred = None if info.needs_proba else model.predict(x)
    return compute_metrics(
        y, problem_type=problem_type, y_pred=pred, proba=proba, classes=classes, only=[metric]
    )[metric]
