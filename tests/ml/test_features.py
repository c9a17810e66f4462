from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from opsloop.errors import DataError, MLError
from opsloop.ml import FeatureSpec, build_preprocessor, infer_feature_types


def test_types_are_inferred_from_dtypes(clf_df: pd.DataFrame) -> None:
    spec = infer_feature_types(clf_df, "y")
    assert spec.numeric == ["signal", "noise", "count"]
    assert spec.categorical == ["colour", "flag"]
    assert "y" not in spec.columns
    assert spec.dropped["when"].startswith("datetime column")
    assert spec.dropped["id"].startswith("identifier-like")
    assert any("'when' dropped" in n for n in spec.notes)
    assert spec.columns == ["signal", "noise", "count", "colour", "flag"]
    assert spec.dtypes["flag"] == "bool"


def test_drop_time_column_and_overrides(clf_df: pd.DataFrame) -> None:
    spec = infer_feature_types(
        clf_df, "y", drop=["noise"], categorical=["count"], time_column="when"
    )
    assert spec.numeric == ["signal"]
    assert spec.categorical == ["count", "colour", "flag"]
    assert spec.dropped["noise"] == "listed in features.drop"
    assert spec.dropped["when"].startswith("time column")


def test_forced_categorical_keeps_an_id_like_column(clf_df: pd.DataFrame) -> None:
    spec = infer_feature_types(clf_df, "y", categorical=["id"])
    assert "id" in spec.categorical


def test_spec_round_trips_through_json(clf_df: pd.DataFrame) -> None:
    spec = infer_feature_types(clf_df, "y", time_column="when")
    again = FeatureSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.columns == spec.columns


def test_unknown_columns_are_named(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"features.drop column\(s\) not in the data: nope"):
        infer_feature_types(clf_df, "y", drop=["nope"])
    with pytest.raises(DataError, match=r"features.numeric column\(s\) not in the data: gone"):
        infer_feature_types(clf_df, "y", numeric=["gone"])
    with pytest.raises(DataError, match="target column"):
        infer_feature_types(clf_df, "label")


def test_contradicting_lists(clf_df: pd.DataFrame) -> None:
    with pytest.raises(MLError, match=r"count listed in both features\.numeric and \.categorical"):
        infer_feature_types(clf_df, "y", numeric=["count"], categorical=["count"])
    with pytest.raises(MLError, match="the target column 'y' cannot also be a feature"):
        infer_feature_types(clf_df, "y", numeric=["y"])


def test_forced_numeric_must_be_numeric(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"column 'colour' is listed in features\.numeric"):
        infer_feature_types(clf_df, "y", numeric=["colour"])


def test_all_nan_feature_is_named(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no values at all in the data: empty"):
        infer_feature_types(clf_df.assign(empty=np.nan), "y")


def test_mixed_types_in_a_text_column(clf_df: pd.DataFrame) -> None:
    mixed = pd.Series(["a", 1] * 300, dtype=object)
    with pytest.raises(DataError, match=r"column 'mixed' mixes value types \(int, str\)"):
        infer_feature_types(clf_df.assign(mixed=mixed), "y")


def test_no_feature_left(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no feature columns left"):
        infer_feature_types(clf_df[["id", "when", "y"]], "y")


def test_preprocessor_imputes_encodes_and_takes_raw_columns(clf_df: pd.DataFrame) -> None:
    spec = infer_feature_types(clf_df, "y", time_column="when")
    pre = build_preprocessor(spec)
    out = pre.fit_transform(clf_df[spec.columns])
    assert isinstance(out, np.ndarray)  # dense: some models reject sparse input
    assert not np.isnan(out).any()
    # numeric: scaled; categorical: one column per seen value.
    assert out.shape == (len(clf_df), 3 + 3 + 2)
    assert np.allclose(out[:, 0].mean(), 0, atol=1e-9)

    model = Pipeline([("preprocess", pre), ("model", LogisticRegression())])
    model.fit(clf_df[spec.columns], clf_df["y"])
    # Serving sends raw rows: any column order, extra columns, unseen category, missing value.
    row = pd.DataFrame(
        {
            "extra": [1],
            "flag": [True],
            "colour": ["purple"],
            "count": [3],
            "noise": [np.nan],
            "signal": [0.1],
        }
    )
    proba = model.predict_proba(row)
    assert proba.shape == (1, 2)
    encoded = pre.transform(row)
    colour_columns = [
        i for i, n in enumerate(pre.get_feature_names_out()) if n.startswith("categorical__colour")
    ]
    assert (encoded[0, colour_columns] == 0).all()


def test_preprocessor_without_scaling_and_with_one_kind(reg_df: pd.DataFrame) -> None:
    spec = infer_feature_types(reg_df, "target", drop=["group"])
    out = build_preprocessor(spec, scale=False).fit_transform(reg_df[spec.columns])
    assert np.allclose(out[:, 0], reg_df["x"])


def test_preprocessor_bounds_one_hot_width() -> None:
    df = pd.DataFrame({"code": [f"c{i % 80}" for i in range(800)], "y": [0, 1] * 400})
    spec = infer_feature_types(df, "y")
    out = build_preprocessor(spec, max_categories=10).fit_transform(df[spec.columns])
    assert out.shape[1] == 10
