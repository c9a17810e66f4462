"""Feature types and the preprocessing that becomes the first step of every model pipeline.

The preprocessor selects its input columns by name, so a saved model takes the raw columns of
the data (in any order, extra columns ignored) and serving needs no separate feature code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from opsloop.errors import DataError, MLError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["FeatureSpec", "build_preprocessor", "check_feature_frame", "infer_feature_types"]

# Text columns with more distinct values than this, nearly one per row, are identifiers or free
# text: one-hot encoding them would only memorise rows.
_ID_MIN_DISTINCT = 100
_ID_DISTINCT_SHARE = 0.5


class FeatureSpec(BaseModel):
    """Which columns feed the model, and how each is treated.

    Attributes:
        target: The target column.
        numeric: Numeric feature columns (imputed with the median, then scaled).
        categorical: Categorical feature columns (imputed with the most frequent value, then
            one-hot encoded; values unseen in training encode as all zeros).
        dropped: Columns left out, each with the reason.
        dtypes: pandas dtype name of every feature column, as seen when inferred.
        notes: Human-readable remarks on the choices made.
    """

    model_config = ConfigDict(frozen=True)

    target: str
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    dropped: dict[str, str] = Field(default_factory=dict)
    dtypes: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Input columns of the model, in the order of the data they were inferred from."""
        return list(self.dtypes)


def _missing_columns(df: pd.DataFrame, names: Iterable[str], what: str) -> None:
    absent = [n for n in names if n not in df.columns]
    if absent:
        raise DataError(
            f"{what} column(s) not in the data: {', '.join(absent)}; "
            f"columns: {', '.join(map(str, df.columns))}"
        )


def infer_feature_types(
    df: pd.DataFrame,
    target: str,
    drop: Sequence[str] = (),
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    *,
    time_column: str | None = None,
) -> FeatureSpec:
    """Decide which columns are numeric or categorical features.

    Columns named in ``numeric`` or ``categorical`` take that type; every other column is
    detected from its dtype: numbers are numeric; strings, categories and booleans are
    categorical; datetime columns and the time column are dropped with a note (absolute time
    does not carry over to future data; derive features such as tenure in the data instead);
    text columns with one distinct value per row are dropped as identifiers.

    Args:
        df: Data with the target column.
        target: Target column, never a feature.
        drop: Columns to leave out.
        numeric: Columns forced to be numeric.
        categorical: Columns forced to be categorical.
        time_column: Column used to order the data in time; left out of the features.

    Returns:
        The feature spec.

    Raises:
        DataError: A named column is missing, a forced numeric column is not numeric, a feature
            column has no values at all, or no feature is left.
        MLError: A column is named in two contradicting lists, or the target is named.
    """
    forced_num = list(numeric or [])
    forced_cat = list(categorical or [])
    _missing_columns(df, [target], "target")
    _missing_columns(df, drop, "features.drop")
    _missing_columns(df, forced_num, "features.numeric")
    _missing_columns(df, forced_cat, "features.categorical")
    for a_name, a, b_name, b in (
        ("numeric", forced_num, "categorical", forced_cat),
        ("numeric", forced_num, "drop", list(drop)),
        ("categorical", forced_cat, "drop", list(drop)),
    ):
        both = sorted(set(a) & set(b))
        if both:
            raise MLError(
                f"column(s) {', '.join(both)} listed in both features.{a_name} and .{b_name}"
            )
    if target in forced_num or target in forced_cat:
        raise MLError(f"the target column '{target}' cannot also be a feature")

    num: list[str] = []
    cat: list[str] = []
    dropped: dict[str, str] = {}
    notes: list[str] = []
    for col in map(str, df.columns):
        series = df[col]
        if col == target:
            continue
        if col in drop:
            dropped[col] = "listed in features.drop"
        elif col in forced_num:
            if not pd.api.types.is_numeric_dtype(series):
                raise DataError(
                    f"column '{col}' is listed in features.numeric but has dtype {series.dtype}"
                )
            num.append(col)
        elif col in forced_cat:
            _check_uniform(series, col)
            cat.append(col)
        elif col == time_column:
            dropped[col] = "time column: orders the data, not a feature"
        elif pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(
            series
        ):
            dropped[col] = "datetime column: absolute time does not carry over to new data"
            notes.append(
                f"'{col}' dropped: datetime; derive numeric features from it (an age, a "
                "duration) in the data, or force it with features.numeric after converting"
            )
        elif pd.api.types.is_bool_dtype(series):
            cat.append(col)
        elif pd.api.types.is_numeric_dtype(series):
            num.append(col)
        elif (
            isinstance(series.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(series)
            or pd.api.types.is_string_dtype(series)
        ):
            distinct = series.nunique(dropna=True)
            present = int(series.notna().sum())
            if distinct > _ID_MIN_DISTINCT and distinct > _ID_DISTINCT_SHARE * present:
                dropped[col] = f"identifier-like: {distinct} distinct values in {present} rows"
                notes.append(
                    f"'{col}' dropped: looks like an identifier or free text; "
                    "force it with features.categorical if it is a real category"
                )
            else:
                _check_uniform(series, col)
                cat.append(col)
        else:
            dropped[col] = f"unsupported dtype {series.dtype}"
            notes.append(
                f"'{col}' dropped: dtype {series.dtype} is neither numeric nor categorical"
            )

    spec = FeatureSpec(
        target=target,
        numeric=num,
        categorical=cat,
        dropped=dropped,
        dtypes={c: str(df[c].dtype) for c in map(str, df.columns) if c in num or c in cat},
        notes=notes,
    )
    check_feature_frame(df, spec, part="data")
    return spec


def _check_uniform(series: pd.Series, col: str) -> None:
    # The encoder sorts the categories, which fails on a mix such as str and int.
    if pd.api.types.is_object_dtype(series):
        kinds = sorted({type(v).__name__ for v in series.dropna()})
        if len(kinds) > 1:
            raise DataError(
                f"column '{col}' mixes value types ({', '.join(kinds)}); "
                "a categorical column needs values of one type"
            )


def check_feature_frame(df: pd.DataFrame, spec: FeatureSpec, *, part: str) -> None:
    """Check that ``df`` has every feature column of ``spec`` with at least one value.

    Args:
        df: The frame to check.
        spec: The feature spec.
        part: How to call ``df`` in messages (``data``, ``training part`` ...).

    Raises:
        DataError: A feature column is missing or entirely empty, or there is no feature.
    """
    if not spec.columns:
        raise DataError(
            f"no feature columns left in the {part} (dropped: "
            f"{', '.join(f'{k} ({v})' for k, v in spec.dropped.items()) or 'none'})"
        )
    _missing_columns(df, spec.columns, "feature")
    empty = [c for c in spec.columns if not df[c].notna().any()]
    if empty:
        raise DataError(
            f"feature column(s) with no values at all in the {part}: {', '.join(empty)}; "
            "drop them with features.drop"
        )


def build_preprocessor(
    spec: FeatureSpec, *, scale: bool = True, max_categories: int | None = 50
) -> ColumnTransformer:
    """Build the (unfitted) column transformer for ``spec``.

    Args:
        spec: The feature spec.
        scale: Standardise numeric columns (helps linear models; harmless for trees).
        max_categories: Most one-hot columns per categorical feature; rarer values share one
            "infrequent" column, which bounds the width on high-cardinality columns.

    Returns:
        A ``ColumnTransformer`` with dense output (some models reject sparse input).
    """
    transformers: list[tuple[str, Pipeline, list[str]]] = []
    if spec.numeric:
        steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), list(spec.numeric)))
    if spec.categorical:
        encoder = OneHotEncoder(
            handle_unknown="ignore", sparse_output=False, max_categories=max_categories
        )
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encoder)]
                ),
                list(spec.categorical),
            )
        )
    if not transformers:
        raise MLError(f"the feature spec for target '{spec.target}' has no feature columns")
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
