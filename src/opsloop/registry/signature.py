"""Model signatures: the input columns a model takes, in order, and what it answers.

A signature read from a packaged model is what the model server checks requests against
(:mod:`opsloop.serve` uses :class:`ColumnSpec` for its requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from opsloop.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SUPPORTED_DTYPES",
    "ColumnSpec",
    "ModelSignature",
    "OutputSpec",
    "check_feature_names",
    "describe_output",
    "infer_signature",
    "signature_from_frame",
]

ClassLabel = bool | int | float | str

#: pandas dtype names a signature column may have, mapped to the kind of value it holds.
SUPPORTED_DTYPES: dict[str, str] = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint8": "int",
    "uint16": "int",
    "uint32": "int",
    "uint64": "int",
    "float16": "float",
    "float32": "float",
    "float64": "float",
    "bool": "bool",
    "object": "str",
    "string": "str",
    "str": "str",
    "category": "str",
    "datetime64[ns]": "datetime",
    "datetime64[us]": "datetime",
    "datetime64[ms]": "datetime",
    "datetime64[s]": "datetime",
}


class ColumnSpec(BaseModel):
    """One input column of a model signature.

    Args:
        name: Column name, as the model was trained on it.
        dtype: pandas dtype name: ``int64``, ``float64``, ``bool``, ``object``, ``string``,
            ``category`` or ``datetime64[ns]`` (other widths of int/float and units of datetime
            are accepted too).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in SUPPORTED_DTYPES:
            known = ", ".join(sorted(SUPPORTED_DTYPES))
            raise ValueError(f"unsupported dtype {value!r}; use one of: {known}")
        return value

    @property
    def kind(self) -> str:
        """The kind of value: ``int``, ``float``, ``bool``, ``str`` or ``datetime``."""
        return SUPPORTED_DTYPES[self.dtype]


def signature_from_frame(df: pd.DataFrame) -> list[ColumnSpec]:
    """Build a signature from the columns and dtypes of a training frame.

    Args:
        df: A frame shaped like the model's input.

    Returns:
        One :class:`ColumnSpec` per column, in order.

    Raises:
        RegistryError: A column has a dtype the server cannot carry.
    """
    specs: list[ColumnSpec] = []
    for name, dtype in df.dtypes.items():
        text = str(dtype)
        if text not in SUPPORTED_DTYPES:
            if pd.api.types.is_string_dtype(dtype):
                text = "string"
            else:
                raise RegistryError(f"column '{name}': dtype {text!r} cannot be served")
        specs.append(ColumnSpec(name=str(name), dtype=text))
    return specs


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
    except RegistryError as exc:
        raise RegistryError(f"input_example: {exc.message}") from exc


def describe_output(model: Any) -> OutputSpec:
    """Describe what a fitted scikit-learn-style estimator answers with.

    Raises:
        RegistryError: The estimator has no method to answer with.
    """
    # Lazy imports here and below (noqa: PLC0415) of sklearn: each loads only where it is used, so
    # importing this module stays light.
    from sklearn.base import is_classifier, is_regressor  # noqa: PLC0415

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
