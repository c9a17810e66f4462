"""A quick profile of a data frame for run summaries: per column type, nulls, distinct values,
and the range of numbers and times."""

from __future__ import annotations

import math

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

__all__ = ["ColumnProfile", "DataProfile", "all_nan_columns", "profile_frame", "render_profile"]


class ColumnProfile(BaseModel):
    """Summary of one column."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    null_fraction: float = Field(ge=0.0, le=1.0)
    distinct: int = Field(ge=0, description="Distinct non-null values.")
    min: float | str | None = Field(default=None, description="Numbers; ISO text for times.")
    max: float | str | None = None
    mean: float | None = Field(default=None, description="Numbers only.")


class DataProfile(BaseModel):
    """Summary of a frame."""

    model_config = ConfigDict(frozen=True)

    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        """The profile of column ``name``.

        Raises:
            KeyError: No such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def profile_frame(df: pd.DataFrame) -> DataProfile:
    """Profile every column of ``df``.

    Booleans count as categories, not numbers; times get a min and max but no mean.
    """
    rows = len(df)
    columns = []
    for position in range(df.shape[1]):
        series = df.iloc[:, position]
        nulls = int(series.isna().sum())
        low: float | str | None = None
        high: float | str | None = None
        mean: float | None = None
        dtype = series.dtype
        present = series.dropna()
        if len(present) and _is_number(dtype):
            values = present.astype("float64")
            low, high, mean = _finite(values.min()), _finite(values.max()), _finite(values.mean())
        elif len(present) and pd.api.types.is_datetime64_any_dtype(dtype):
            low, high = present.min().isoformat(), present.max().isoformat()
        columns.append(
            ColumnProfile(
                name=str(df.columns[position]),
                dtype=str(dtype),
                null_fraction=nulls / rows if rows else 0.0,
                distinct=int(_distinct(present)),
                min=low,
                max=high,
                mean=mean,
            )
        )
    return DataProfile(rows=rows, columns=columns)


def all_nan_columns(df: pd.DataFrame) -> list[str]:
    """Names of the columns where every value is null (all of them when ``df`` has no rows)."""
    empty = df.isna().all(axis=0)
    return [str(name) for name, is_empty in zip(df.columns, empty, strict=True) if is_empty]


def render_profile(profile: DataProfile) -> Table:
    """Render ``profile`` as a rich table."""
    table = Table(title=f"Data profile ({profile.rows} rows)")
    table.add_column("column")
    table.add_column("dtype")
    for header in ("nulls", "distinct", "min", "max", "mean"):
        table.add_column(header, justify="right")
    for column in profile.columns:
        table.add_row(
            column.name,
            column.dtype,
            f"{column.null_fraction:.1%}",
            str(column.distinct),
            _fmt(column.min),
            _fmt(column.max),
            _fmt(column.mean),
        )
    return table


def _is_number(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _distinct(present: pd.Series) -> int:
    try:
        return int(present.nunique())
    except TypeError:
        # Unhashable cells (lists, dicts) are compared by their text instead.
        return int(present.astype(str).nunique())


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _fmt(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
