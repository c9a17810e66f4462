"""Reference profiles: what a drift check needs from the training data, computed once.

A profile is built when a model is registered and stored next to it as JSON. Its size does
not grow with the reference data: a numeric feature keeps a sorted sample of at most
``sample_size`` quantiles, a categorical feature at most ``max_categories`` frequencies. A
later drift check then reads only the new window of data.

How exact the sample is: when a feature has at most ``sample_size`` finite values, the sample
*is* the reference and every statistic equals the one computed on the full data. Otherwise
the sample holds evenly spaced order statistics, and the profile stores the Kolmogorov-Smirnov
and Wasserstein distances between the sample and the full reference. Both are metrics, so a
statistic computed against the sample differs from the one against the full reference by at
most that stored distance (triangle inequality); drift results carry these bounds.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from opsloop.data._ecdf import SortedWindow, ks_wasserstein
from opsloop.errors import MonitorError

__all__ = [
    "CategoricalProfile",
    "Category",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_reference_profile",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Distinct values kept for a numeric feature with few of them (enough for the
#: low-cardinality tests, which apply up to 5 distinct values by default).
STORED_DISTINCT_VALUES = 20
#: An integer column with at most this many distinct values is categorical (as in Evidently).
INTEGER_CARDINALITY_LIMIT = 10
#: Name under which model predictions are profiled.
PREDICTION = "prediction"

Category = bool | int | float | str


def _decode(value: Any, dtype: str) -> npt.NDArray[Any]:
    if isinstance(value, np.ndarray):
        array = np.array(value, dtype=dtype)
    elif isinstance(value, str):
        raw = base64.b64decode(value.encode("ascii"), validate=True)
        if len(raw) % 8:
            raise ValueError("base64 data is not a whole number of 8-byte values")
        array = np.frombuffer(raw, dtype=f"<{dtype[0]}8").astype(dtype)
    elif isinstance(value, list | tuple):
        array = np.asarray(value, dtype=dtype)
    else:
        raise ValueError("expected base64 text or a list of numbers")
    if array.ndim != 1:
        raise ValueError("expected a one-dimensional array")
    array.setflags(write=False)
    return array


def _decode_floats(value: Any) -> FloatArray:
    return _decode(value, "f8")


def _decode_ints(value: Any) -> IntArray:
    return _decode(value, "i8")


def _encode_array(value: npt.NDArray[Any]) -> str:
    little_endian = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    return base64.b64encode(little_endian.tobytes()).decode("ascii")


_BASE64 = WithJsonSchema({"type": "string", "contentEncoding": "base64"})
#: A float64 array, stored in JSON as base64 of its little-endian bytes: exact, and about a
#: third of the size of decimal text.
Float64Array = Annotated[
    FloatArray,
    PlainValidator(_decode_floats),
    PlainSerializer(_encode_array, return_type=str, when_used="json"),
    _BASE64,
]
#: An int64 array, stored like :data:`Float64Array`.
Int64Array = Annotated[
    IntArray,
    PlainValidator(_decode_ints),
    PlainSerializer(_encode_array, return_type=str, when_used="json"),
    _BASE64,
]


class NumericProfile(BaseModel):
    """Reference summary of one numeric feature.

    Attributes:
        rows: Rows in the reference, missing values included.
        count: Finite values; the reference size the drift tests use.
        missing: Missing values (NaN, None and infinities).
        mean: Mean of the finite values.
        std: Population standard deviation (``ddof=0``) of the finite values.
        min: Smallest finite value.
        max: Largest finite value.
        n_unique: Distinct finite values.
        values: The distinct values when there are at most 20 of them.
        value_counts: How often each of ``values`` occurs.
        sample: Sorted finite values, or when there are more than ``sample_size`` of them, a
            compressed form: the outer tails value by value and the middle in equal blocks,
            each block represented by its median.
        sample_counts: How many reference values each point of ``sample`` stands for;
            ``None`` when each stands for one.
        sample_exact: Whether ``sample`` is the whole reference.
        sample_ks_error: KS distance between ``sample`` and the full reference.
        sample_wasserstein_error: Wasserstein distance between ``sample`` and the reference.
        psi_edges: Inner bin edges (reference quantiles) used for the PSI.
        psi_reference: Share of the reference in each PSI bin, ``len(psi_edges) + 1`` bins;
            bin ``i`` holds values in ``(edge[i-1], edge[i]]``.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["numeric"] = "numeric"
    rows: int
    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    n_unique: int
    values: list[float] | None = None
    value_counts: list[int] | None = None
    sample: Float64Array
    sample_counts: Int64Array | None = None
    sample_exact: bool
    sample_ks_error: float = 0.0
    sample_wasserstein_error: float = 0.0
    psi_edges: list[float]
    psi_reference: list[float]

    @property
    def missing_rate(self) -> float:
        """Share of reference rows without a finite value."""
        return self.missing / self.rows if self.rows else 0.0

    @model_validator(mode="after")
    def _consistent(self) -> NumericProfile:
        # A profile read from a file must not quietly give wrong statistics.
        sample = self.sample
        if sample.size == 0 or not np.all(np.isfinite(sample)):
            raise ValueError("sample must hold finite values")
        if np.any(sample[1:] < sample[:-1]):
            raise ValueError("sample must be sorted")
        if self.sample_counts is None:
            if sample.size != self.count:
                raise ValueError("sample without sample_counts must hold all count values")
        elif (
            self.sample_counts.size != sample.size
            or np.any(self.sample_counts < 1)
            or int(self.sample_counts.sum()) != self.count
        ):
            raise ValueError("sample_counts must be positive, one per sample point, sum = count")
        if len(self.psi_reference) != len(self.psi_edges) + 1:
            raise ValueError("psi_reference needs one share more than psi_edges")
        return self

    @property
    def sample_cumcounts(self) -> IntArray | None:
        """Reference values at or below each sample point; ``None`` when unweighted."""
        if self.sample_counts is None:
            return None
        return np.cumsum(self.sample_counts, dtype=np.int64)


class CategoricalProfile(BaseModel):
    """Reference summary of one categorical feature.

    Attributes:
        rows: Rows in the reference, missing values included.
        count: Non-missing values; the reference size the drift tests use.
        missing: Missing values.
        n_unique: Distinct categories in the reference.
        categories: The most frequent categories (all of them unless there were more than
            ``max_categories``), most frequent first.
        counts: How often each category occurs.
        other: Reference values in categories that were not kept; when it is above zero, a
            category of the current data that is not listed is pooled with these instead of
            being called unseen.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["categorical"] = "categorical"
    rows: int
    count: int
    missing: int
    n_unique: int
    categories: list[Category]
    counts: list[int]
    other: int = 0

    @property
    def missing_rate(self) -> float:
        """Share of reference rows without a value."""
        return self.missing / self.rows if self.rows else 0.0


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class ReferenceProfile(BaseModel):
    """Everything a drift check needs to know about the reference data.

    Serialise with ``profile.model_dump_json()`` and read back with
    ``ReferenceProfile.model_validate_json(text)``.

    Attributes:
        created_at: When the profile was built (UTC).
        rows: Rows in the reference data.
        features: Per-feature summaries, in column order.
        prediction: Summary of the model's predictions on the reference, if given.
        skipped: Columns left out of the profile, with the reason.
        sample_size: Largest quantile sample kept per numeric feature.
    """

    model_config = ConfigDict(frozen=True)

    format_version: Literal[1] = 1
    created_at: datetime
    rows: int
    features: dict[str, FeatureProfile]
    prediction: FeatureProfile | None = None
    skipped: dict[str, str] = Field(default_factory=dict)
    sample_size: int


def numeric_values(series: pd.Series, name: str) -> FloatArray:
    """The column as float64, missing values as NaN; raises if it is not numeric."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise MonitorError(f"column '{name}': expected numbers, got dtype {dtype}")
    if dtype == np.float64:
        return np.asarray(series.to_numpy(), dtype=np.float64)
    return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _compress(sorted_values: FloatArray, size: int) -> tuple[FloatArray, IntArray]:
    """``size`` weighted points standing for ``sorted_values`` (more than ``size`` of them).

    The Wasserstein error of such a summary is the sum, over blocks, of how far the block's
    values lie from its representative, weighted by the block's share; it is largest where
    values are spread out, which is in the tails. So the lowest and highest tenth of the
    points are kept as they are and only the dense middle is pooled into equal blocks, each
    represented by its median (the point that minimises that distance).
    """
    n = sorted_values.size
    tail = size // 10
    blocks = size - 2 * tail
    middle = n - 2 * tail
    bounds = tail + (np.arange(blocks + 1, dtype=np.int64) * middle) // blocks
    singles_low = np.arange(tail, dtype=np.int64)
    singles_high = np.arange(n - tail, n, dtype=np.int64)
    starts = np.concatenate((singles_low, bounds[:-1], singles_high))
    ends = np.concatenate((singles_low + 1, bounds[1:], singles_high + 1))
    representatives = sorted_values[(starts + ends - 1) // 2]
    return np.ascontiguousarray(representatives), ends - starts


def _numeric_profile(
    values: FloatArray, *, sample_size: int, psi_bins: int
) -> NumericProfile | None:
    rows = int(values.size)
    finite = np.sort(values[np.isfinite(values)])
    count = int(finite.size)
    if count == 0:
        return None
    distinct_at = np.flatnonzero(finite[1:] != finite[:-1]) + 1
    n_unique = int(distinct_at.size) + 1
    distinct: list[float] | None = None
    distinct_counts: list[int] | None = None
    if n_unique <= STORED_DISTINCT_VALUES:
        starts = np.concatenate(([0], distinct_at))
        ends = np.concatenate((distinct_at, [count]))
        distinct = [float(v) for v in finite[starts]]
        distinct_counts = [int(c) for c in ends - starts]

    sample_counts: IntArray | None = None
    if count <= sample_size:
        sample, exact, ks_error, w_error = finite, True, 0.0, 0.0
    else:
        sample, sample_counts = _compress(finite, sample_size)
        center = float(finite[count // 2])
        window = SortedWindow(finite, center)
        ks_error, w_error = ks_wasserstein(sample, window, np.cumsum(sample_counts))
        exact = False

    edges = np.unique(np.quantile(finite, np.arange(1, psi_bins) / psi_bins))
    at_or_below = np.searchsorted(finite, edges, side="right")
    bin_counts = np.diff(np.concatenate(([0], at_or_below, [count])))
    return NumericProfile(
        rows=rows,
        count=count,
        missing=rows - count,
        mean=float(np.mean(finite)),
        std=float(np.std(finite)),
        min=float(finite[0]),
        max=float(finite[-1]),
        n_unique=n_unique,
        values=distinct,
        value_counts=distinct_counts,
        sample=sample,
        sample_counts=sample_counts,
        sample_exact=exact,
        sample_ks_error=ks_error,
        sample_wasserstein_error=w_error,
        psi_edges=[float(e) for e in edges],
        psi_reference=[float(c) / count for c in bin_counts],
    )


def as_category(value: object) -> Category:
    """A category value as a JSON-friendly scalar (numpy scalars unwrapped, others as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def category_counts(series: pd.Series) -> dict[Category, int]:
    """Non-missing category frequencies of a column, most frequent first."""
    if pd.api.types.is_float_dtype(series.dtype):
        # Infinities count as missing, as they do for numeric features.
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        series = pd.Series(np.where(np.isinf(values), np.nan, values))
    counts = series.value_counts(dropna=True, sort=True)
    result: dict[Category, int] = {}
    for key, n in counts.items():
        if n > 0:
            category = as_category(key)
            result[category] = result.get(category, 0) + int(n)
    return result


def _categorical_profile(series: pd.Series, *, max_categories: int) -> CategoricalProfile | None:
    rows = len(series)
    counts = category_counts(series)
    count = sum(counts.values())
    if count == 0:
        return None
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    kept = ranked[:max_categories]
    return CategoricalProfile(
        rows=rows,
        count=count,
        missing=rows - count,
        n_unique=len(counts),
        categories=[k for k, _ in kept],
        counts=[n for _, n in kept],
        other=sum(n for _, n in ranked[max_categories:]),
    )


def detect_kind(series: pd.Series) -> tuple[Literal["numeric", "categorical"] | None, str]:
    """Column type by the rules Evidently applies, so that default verdicts agree.

    Floats are numeric; integers are categorical with at most 10 distinct values and numeric
    otherwise; booleans and pandas categoricals are categorical; text is categorical unless
    more than half of its values are distinct (free text, which is not profiled); anything
    else (dates, objects) is not profiled.

    Returns:
        ``(kind, reason)``: the kind, or ``None`` and why the column is left out.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical", ""
    if pd.api.types.is_float_dtype(dtype):
        return "numeric", ""
    if pd.api.types.is_integer_dtype(dtype):
        if series.nunique() <= INTEGER_CARDINALITY_LIMIT:
            return "categorical", ""
        return "numeric", ""
    if pd.api.types.is_string_dtype(dtype):
        non_missing = series.dropna()
        if non_missing.empty:
            return None, "no values"
        if not all(isinstance(non_missing.iloc[i], str) for i in (0, -1)):
            return None, f"dtype {dtype} holds values that are not text"
        distinct = series.nunique()
        if distinct > 0.5 * non_missing.size:
            return None, f"free text ({distinct} distinct values in {non_missing.size})"
        return "categorical", ""
    return None, f"dtype {dtype} is neither numeric nor categorical"


def _profile_column(
    series: pd.Series,
    name: str,
    kind: Literal["numeric", "categorical"],
    *,
    sample_size: int,
    psi_bins: int,
    max_categories: int,
) -> NumericProfile | CategoricalProfile | None:
    if kind == "numeric":
        values = numeric_values(series, name)
        return _numeric_profile(values, sample_size=sample_size, psi_bins=psi_bins)
    return _categorical_profile(series, max_categories=max_categories)


def build_reference_profile(
    df: pd.DataFrame,
    *,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    predictions: npt.ArrayLike | None = None,
    sample_size: int = 10_000,
    max_categories: int = 1_000,
    psi_bins: int = 10,
) -> ReferenceProfile:
    """Summarise reference data once, so that later drift checks only read new data.

    Args:
        df: The reference data, usually the training set.
        numeric: Numeric feature columns. When this or ``categorical`` is given, exactly the
            listed columns are profiled; when both are ``None`` every column's type is
            detected (see :func:`detect_kind`) and columns that fit neither are recorded in
            ``skipped``.
        categorical: Categorical feature columns.
        predictions: The model's predictions on ``df`` (one-dimensional); numeric when they
            are floats or integers with more than 10 distinct values, else categorical.
        sample_size: Most quantiles kept per numeric feature. References with at most this
            many values are kept whole, which makes every statistic exact; the default keeps
            all of them for the small references where Evidently's defaults use a KS test.
        max_categories: Most categories kept per categorical feature; rarer ones are pooled.
        psi_bins: Quantile bins used for the population stability index.

    Returns:
        The profile.

    Raises:
        MonitorError: The data is empty, a listed column is missing, is listed twice, is not
            numeric though listed as numeric, or has no values.
    """
    if not isinstance(df, pd.DataFrame):
        raise MonitorError(f"reference data must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise MonitorError("reference data has no rows")
    if len({str(c) for c in df.columns}) != len(df.columns):
        raise MonitorError("reference data has duplicate column names")
    if sample_size < 1 or max_categories < 1 or psi_bins < 2:
        raise MonitorError("sample_size and max_categories must be >= 1 and psi_bins >= 2")

    explicit = numeric is not None or categorical is not None
    plan: dict[str, Literal["numeric", "categorical"]] = {}
    skipped: dict[str, str] = {}
    if explicit:
        listed = [*(numeric or []), *(categorical or [])]
        twice = sorted({c for c in listed if listed.count(c) > 1})
        if twice:
            raise MonitorError(f"columns listed more than once: {', '.join(twice)}")
        absent = [c for c in listed if c not in df.columns]
        if absent:
            raise MonitorError(f"reference data has no column(s): {', '.join(absent)}")
        for column in df.columns:
            if column in (numeric or []):
                plan[column] = "numeric"
            elif column in (categorical or []):
                plan[column] = "categorical"
    else:
        for column in df.columns:
            kind, reason = detect_kind(df[column])
            if kind is None:
                skipped[str(column)] = reason
            else:
                plan[column] = kind

    options = {"sample_size": sample_size, "psi_bins": psi_bins, "max_categories": max_categories}
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    for column, kind in plan.items():
        name = str(column)
        feature = _profile_column(df[column], name, kind, **options)
        if feature is None:
            if explicit:
                raise MonitorError(f"column '{name}': no non-missing values in the reference")
            skipped[name] = "no non-missing values"
            continue
        features[name] = feature

    prediction = None
    if predictions is not None:
        series = prediction_series(predictions)
        kind, reason = detect_kind(series)
        if kind is None:
            raise MonitorError(f"predictions: {reason}")
        prediction = _profile_column(series, PREDICTION, kind, **options)
        if prediction is None:
            raise MonitorError("predictions: no non-missing values")

    return ReferenceProfile(
        created_at=datetime.now(UTC),
        rows=len(df),
        features=features,
        prediction=prediction,
        skipped=skipped,
        sample_size=sample_size,
    )


def prediction_series(predictions: npt.ArrayLike) -> pd.Series:
    """Predictions as a Series; raises unless they are one value per row."""
    array = np.asarray(predictions)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise MonitorError(
            f"predictions must be one value per row, got an array of shape {array.shape}",
            hint="profile class probabilities as separate numeric columns of the data",
        )
    return pd.Series(array, name=PREDICTION)
