"""Model signatures: the input columns a model takes, in order, and what it answers.

The column type is the serving contract's :class:`~opsloop.serve.base.ColumnSpec`, so a
signature read from a packaged model is what the model server checks requests against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from opsloop.errors import RegistryError, ServingError
from opsloop.serve.base import ColumnSpec, signature_from_frame

__all__ = [
    "ColumnSpec",
    "ModelSignature",
    "OutputSpec",
    "check_feature_names",
    "describe_output",
    "infer_signature",
]

ClassLabel = bool | int | float | str


class OutputSpec(BaseModel):
    """What a model answers with.

    Args:
        kind: ``classifier``, ``regressor`` or ``other`` (clusterers, transformers …).
        method: The estimator method ``predict`` of a loaded model calls: ``predict_proba``
            for classifiers that have it, else ``predict``, or ``transform`` for
            transformers without ``predict``.
        classes: Class labels, in the order of the probability columns; None for
            non-classifiers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["classifier", "regressor", "other"]
    method: Literal["predict_proba", "predict", "transform"]
    classes: list[ClassLabel] | None = None


class ModelSignature(BaseModel):
    """The input columns of a model, in order, and its output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[ColumnSpec]
    output: OutputSpec

    @property
    def column_names(self) -> list[str]:
        """Input column names, in order."""
        return [c.name for c in self.inputs]


def infer_signature(df: pd.DataFrame) -> list[ColumnSpec]:
    """Input columns (names and dtypes, in order) of an example input frame.

    Raises:
        RegistryError: The frame is empty of columns, has duplicate or non-string column
            names, or a column has a dtype a model server cannot carry.
    """
    if not isinstance(df, pd.DataFrame):
        raise RegistryError(f"input_example must be a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise RegistryError("input_example has no columns")
    names = [str(c) for c in df.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(f"input_example has duplicate columns: {', '.join(duplicates)}")
    try:
        return signature_from_frame(df)
    except ServingError as exc:
        raise RegistryError(f"input_example: {exc.message}") from exc


def describe_output(model: Any) -> OutputSpec:
    """Describe what a fitted scikit-learn-style estimator answers with.

    Raises:
        RegistryError: The estimator has no method to answer with.
    """
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        classes = getattr(model, "classes_", None)
        return OutputSpec(
            kind="classifier",
            method="predict_proba" if hasattr(model, "predict_proba") else "predict",
            classes=None if classes is None else _plain_list(classes),
        )
    kind: Literal["regressor", "other"] = "regressor" if is_regressor(model) else "other"
    if hasattr(model, "predict"):
        return OutputSpec(kind=kind, method="predict")
    if hasattr(model, "transform"):
        return OutputSpec(kind=kind, method="transform")
    raise RegistryError(f"{type(model).__name__} has neither predict nor transform")


def check_feature_names(inputs: Sequence[ColumnSpec], model: Any) -> None:
    """Refuse a signature whose columns differ from those the model was fitted on.

    Estimators fitted on a DataFrame remember its column names in ``feature_names_in_``;
    estimators fitted on arrays do not, and then any names are accepted.

    Raises:
        RegistryError: Columns are missing, extra or in another order.
    """
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        return
    expected = [str(c) for c in fitted]
    given = [c.name for c in inputs]
    if given == expected:
        return
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"not fitted on {', '.join(extra)}")
    if not parts:
        parts.append(f"order differs: the model was fitted on {', '.join(expected)}")
    raise RegistryError(
        f"the signature does not match the columns the model was fitted on: {'; '.join(parts)}"
    )


def _plain_list(values: Any) -> list[ClassLabel]:
    # numpy scalars do not survive YAML; tolist() turns them into Python values.
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    out: list[ClassLabel] = []
    for item in items:
        if not isinstance(item, bool | int | float | str):
            raise RegistryError(
                f"class label {item!r} of type {type(item).__name__} cannot be recorded; "
                "use str, int, float or bool labels"
            )
        out.append(item)
    return out
