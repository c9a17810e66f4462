"""Train/test split: stratified at random, or by time when the data has a time column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from opsloop.errors import DataError, MLError
from opsloop.ml.metrics import check_problem_type

__all__ = ["check_target", "split_dataset"]


def _examples(index: pd.Index, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in index[:limit])
    return shown + (", ..." if len(index) > limit else "")


def _label(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_target(
    df: pd.DataFrame, *, target: str, problem_type: str, min_class_rows: int = 5
) -> None:
    """Check that ``df`` has a usable target column.

    Raises:
        DataError: The column is missing or has missing values; a classification target has
            one class or a class with fewer than ``min_class_rows`` rows; a regression target
            is not numeric.
    """
    ptype = check_problem_type(problem_type)
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' is not in the data; "
            f"columns: {', '.join(map(str, df.columns))}"
        )
    y = df[target]
    missing = y.isna()
    if missing.any():
        raise DataError(
            f"target column '{target}' has {int(missing.sum())} missing values "
            f"(rows {_examples(df.index[missing.to_numpy()])})"
        )
    if ptype == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(
                f"target column '{target}' has dtype {y.dtype}; regression needs a numeric target"
            )
        return
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"target column '{target}' has only one class ({_label(counts.index[0])}); "
            "classification needs at least two"
        )
    rare = counts[counts < min_class_rows]
    if len(rare):
        listed = ", ".join(f"{_label(k)}: {v}" for k, v in rare.items())
        raise DataError(
            f"target column '{target}' has too few rows per class (need {min_class_rows}): {listed}"
        )


def split_dataset(
    df: pd.DataFrame,
    *,
    target: str,
    problem_type: str,
    test_size: float = 0.2,
    time_column: str | None = None,
    seed: int = 42,
    min_class_rows: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into a training part and a held-out test part.

    Without ``time_column`` the split is random with a fixed seed, stratified by class for
    classification. With it, the test part is the latest ``test_size`` share of rows by time;
    rows sharing the cut-off timestamp all go to the test part, so no training row is later
    than, or as late as, a test row. Row order and index are kept.

    Args:
        df: The whole data set, target included.
        target: Name of the target column.
        problem_type: ``classification`` or ``regression``.
        test_size: Share of rows held out, between 0 and 1.
        time_column: Column ordering the rows in time (datetime, numeric, or date strings).
        seed: Seed of the random split.
        min_class_rows: Fewest rows a class may have.

    Returns:
        ``(train_df, test_df)``.

    Raises:
        DataError: Unusable target or time column, or a part would lack a class.
        MLError: ``test_size`` out of range.
    """
    ptype = check_problem_type(problem_type)
    if not 0 < test_size < 1:
        raise MLError(f"test_size must be between 0 and 1, got {test_size}")
    check_target(df, target=target, problem_type=ptype, min_class_rows=min_class_rows)
    n_test = math.ceil(len(df) * test_size)
    if n_test < 1 or len(df) - n_test < 1:
        raise DataError(f"{len(df)} rows are too few to hold out a test share of {test_size}")

    if time_column is None:
        stratify = df[target].to_numpy() if ptype == "classification" else None
        try:
            train_pos, test_pos = train_test_split(
                np.arange(len(df)),
                test_size=n_test,
                random_state=seed,
                shuffle=True,
                stratify=stratify,
            )
        except ValueError as exc:
            raise DataError(f"cannot split on target '{target}': {exc}") from exc
        # Positions, not index labels, so a duplicated index cannot mix the parts; sorted to
        # keep the original row order inside each part.
        return df.iloc[np.sort(train_pos)], df.iloc[np.sort(test_pos)]

    times = _time_values(df, time_column)
    order = times.sort_values(kind="stable")
    cutoff = order.iloc[len(df) - n_test]
    is_test = (times >= cutoff).to_numpy()
    if is_test.all():
        raise DataError(
            f"time column '{time_column}' leaves no rows before the cut-off {cutoff}; "
            "too many rows share the latest timestamps"
        )
    train, test = df.loc[~is_test], df.loc[is_test]
    if ptype == "classification":
        for part_name, part in (("training", train), ("test", test)):
            if part[target].nunique() < 2:
                raise DataError(
                    f"the time-based split at {time_column} >= {cutoff} leaves the {part_name} "
                    f"part with one class of '{target}'; use a larger test_size or a random split"
                )
    return train, test


def _time_values(df: pd.DataFrame, time_column: str) -> pd.Series:
    if time_column not in df.columns:
        raise DataError(
            f"time column '{time_column}' is not in the data; "
            f"columns: {', '.join(map(str, df.columns))}"
        )
    times = df[time_column]
    if not (pd.api.types.is_datetime64_any_dtype(times) or pd.api.types.is_numeric_dtype(times)):
        try:
            times = pd.to_datetime(times, format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"time column '{time_column}' has values that are not dates: {exc}"
            ) from exc
    missing = times.isna()
    if missing.any():
        raise DataError(
            f"time column '{time_column}' has {int(missing.sum())} missing values "
            f"(rows {_examples(df.index[missing.to_numpy()])})"
        )
    return times
