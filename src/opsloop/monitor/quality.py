"""Model quality over labelled rows of the prediction log.

The metrics are those of training and evaluation (:func:`opsloop.ml.metrics.compute_metrics`),
so a live ``quality.roc_auc`` means what the ``roc_auc`` gate meant when the model was
registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.errors import MLError, MonitorError
from opsloop.ml.metrics import METRICS, compute_metrics
from opsloop.monitor.windows import LABEL, OUTPUT

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

__all__ = ["LABELLED", "quality_metrics"]

#: Name under which :func:`quality_metrics` returns how many labelled rows it scored.
LABELLED = "labelled"

# Metrics that rank scores: undefined unless the labels hold both classes.
_RANKING = ("roc_auc", "pr_auc")


def _as_label(value: Any) -> Any:
    # JSON has one number type: a label 1.0 and a class 1 are the same class.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _array(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    """Labels as a typed array: scikit-learn cannot tell the kind of an object array."""
    kinds = {type(v) for v in values}
    if kinds <= {bool, np.bool_} or kinds <= {int, bool} or kinds <= {int, float} or kinds <= {str}:
        return np.asarray(values)
    return np.asarray(values, dtype=object)


def quality_metrics(
    rows: pd.DataFrame,
    *,
    problem_type: str,
    classes: Sequence[Any] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, float]:
    """Quality metrics over the rows of a window that have a label.

    Args:
        rows: Rows of a window (:data:`~opsloop.monitor.windows.OUTPUT` and
            :data:`~opsloop.monitor.windows.LABEL` columns); unlabelled rows are skipped.
        problem_type: ``classification`` or ``regression``.
        classes: The model's classes, in the order of its probability outputs (the last is
            the positive class of a binary model). Without them, binary probabilities of
            labels 0/1 (or False/True) are read as that order, and otherwise the sorted labels
            seen are taken when there are as many as probabilities.
        only: Restrict to these metric names.

    Returns:
        ``{metric: value}`` plus :data:`LABELLED`, the number of rows scored; only
        :data:`LABELLED` (0) when no row has a label. Ranking metrics (roc_auc, pr_auc) are
        left out while the labels hold a single class.

    Raises:
        MonitorError: Outputs and labels do not fit together (unknown classes, probability
            vectors of different lengths, non-numeric regression values).
    """
    labelled = rows.loc[rows[LABEL].notna()] if len(rows) else rows
    n = len(labelled)
    if n == 0:
        return {LABELLED: 0.0}
    y = [_as_label(v) for v in labelled[LABEL].tolist()]
    outputs = labelled[OUTPUT].tolist()
    try:
        if problem_type == "regression":
            out = _regression(y, outputs, only)
        elif problem_type == "classification":
            out = _classification(y, outputs, classes, only)
        else:
            raise MonitorError(
                f"unknown problem type '{problem_type}'; known: classification, regression"
            )
    except MLError as exc:
        raise MonitorError(f"quality metrics: {exc.message}") from exc
    out[LABELLED] = float(n)
    return out


def _regression(y: list[Any], outputs: list[Any], only: Sequence[str] | None) -> dict[str, float]:
    try:
        truth = np.asarray(y, dtype=np.float64)
        pred = np.asarray(outputs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MonitorError(f"regression labels and outputs must be numbers: {exc}") from exc
    if pred.ndim != 1:
        raise MonitorError(f"regression outputs must be one number per row, got {pred.shape}")
    keep = np.isfinite(truth) & np.isfinite(pred)
    if not keep.any():
        return {}
    return compute_metrics(truth[keep], problem_type="regression", y_pred=pred[keep], only=only)


def _classification(
    y: list[Any],
    outputs: list[Any],
    classes: Sequence[Any] | None,
    only: Sequence[str] | None,
) -> dict[str, float]:
    wanted = list(only) if only is not None else list(METRICS["classification"])
    present = {v for v in y}
    if len(present) < 2:
        wanted = [m for m in wanted if m not in _RANKING]
    truth = _array(y)
    if not all(isinstance(o, list | tuple) for o in outputs):
        # A model without probabilities answers with the class itself.
        pred = _array([_as_label(o) for o in outputs])
        labels_only = [m for m in wanted if m in ("f1", "precision", "recall", "accuracy")]
        return compute_metrics(
            truth, problem_type="classification", y_pred=pred, classes=classes, only=labels_only
        )
    widths = {len(o) for o in outputs}
    if len(widths) != 1:
        raise MonitorError(
            f"classification outputs hold probability vectors of different lengths: "
            f"{sorted(widths)}"
        )
    proba = np.asarray(outputs, dtype=np.float64)
    k = proba.shape[1]
    order = _classes(classes, present, k)
    return compute_metrics(
        truth, problem_type="classification", proba=proba, classes=order, only=wanted
    )


def _classes(classes: Sequence[Any] | None, present: set[Any], k: int) -> np.ndarray[Any, Any]:
    if classes is not None:
        if len(classes) != k:
            raise MonitorError(
                f"the model has {len(classes)} classes but its outputs hold {k} probabilities"
            )
        return _array([_as_label(c) for c in classes])
    if k == 2 and present <= {0, 1}:
        return np.asarray([0, 1])
    if len(present) == k:
        return _array(sorted(present, key=lambda v: (type(v).__name__, v)))
    raise MonitorError(
        f"the model's classes are unknown and the labels ({len(present)} distinct) do not "
        f"name its {k} probability columns",
        hint="register the model with its classes (its signature records classes_)",
    )
