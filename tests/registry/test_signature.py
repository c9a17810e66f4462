"""Signature inference from example frames, and output descriptions."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from opsloop.errors import RegistryError
from opsloop.registry import ColumnSpec, OutputSpec, infer_signature
from opsloop.registry.signature import check_feature_names, describe_output


def test_infer_signature_keeps_order_and_dtypes() -> None:
    df = pd.DataFrame(
        {
            "z_float": [1.5, 2.5],
            "a_int": np.array([1, 2], dtype="int32"),
            "flag": [True, False],
            "label": pd.Series(["x", "y"], dtype="string"),
            "kind": pd.Categorical(["u", "v"]),
            "when": pd.to_datetime(["2024-01-01", "2024-01-02"]).astype("datetime64[ns]"),
            "obj": pd.Series(["p", "q"], dtype=object),
        }
    )
    sig = infer_signature(df)
    assert [c.name for c in sig] == list(df.columns)
    assert [c.dtype for c in sig] == [
        "float64",
        "int32",
        "bool",
        "string",
        "category",
        "datetime64[ns]",
        "object",
    ]
    assert all(isinstance(c, ColumnSpec) for c in sig)


def test_infer_signature_names_the_unsupported_column() -> None:
    df = pd.DataFrame({"ok": [1.0], "z": [complex(1, 2)]})
    with pytest.raises(RegistryError, match="column 'z'"):
        infer_signature(df)


def test_infer_signature_refuses_duplicates_empty_and_non_frames() -> None:
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(RegistryError, match="duplicate columns: a"):
        infer_signature(dup)
    with pytest.raises(RegistryError, match="no columns"):
        infer_signature(pd.DataFrame(index=[0, 1]))
    with pytest.raises(RegistryError, match="must be a pandas DataFrame"):
        infer_signature(cast(Any, np.zeros((2, 2))))


def test_describe_output(classifier: Pipeline, regressor: Pipeline) -> None:
    out = describe_output(classifier)
    assert out == OutputSpec(kind="classifier", method="predict_proba", classes=[0, 1, 2])
    assert all(type(c) is int for c in out.classes or [])
    assert describe_output(regressor) == OutputSpec(kind="regressor", method="predict")


def test_describe_output_keeps_string_labels() -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(X, np.array(["no", "yes", "no", "yes"]))
    assert describe_output(model).classes == ["no", "yes"]


def test_check_feature_names(classifier: Pipeline) -> None:
    good = [ColumnSpec(name=n, dtype="float64") for n in ("age", "income", "city")]
    check_feature_names(good, classifier)
    with pytest.raises(RegistryError, match="missing city; not fitted on town"):
        check_feature_names([*good[:2], ColumnSpec(name="town", dtype="object")], classifier)
    with pytest.raises(RegistryError, match="order differs"):
        check_feature_names(list(reversed(good)), classifier)
