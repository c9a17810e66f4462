from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.errors import DataError, MLError
from opsloop.ml import split_dataset


def test_stratified_split_keeps_class_shares_and_partitions_rows(clf_df: pd.DataFrame) -> None:
    train, test = split_dataset(clf_df, target="y", problem_type="classification", test_size=0.25)
    assert len(test) == 150 and len(train) == 450
    assert set(train.index).isdisjoint(test.index)
    assert sorted([*train.index, *test.index]) == list(clf_df.index)
    share = clf_df["y"].mean()
    # Stratification puts each class's share within one row of the whole.
    assert abs(test["y"].mean() - share) <= 1 / len(test)
    assert abs(train["y"].mean() - share) <= 1 / len(train)
    # Row order inside each part is the original order.
    assert list(train.index) == sorted(train.index)
    assert list(test.index) == sorted(test.index)


def test_split_is_deterministic_for_a_seed(clf_df: pd.DataFrame) -> None:
    a = split_dataset(clf_df, target="y", problem_type="classification", seed=3)[1]
    b = split_dataset(clf_df, target="y", problem_type="classification", seed=3)[1]
    c = split_dataset(clf_df, target="y", problem_type="classification", seed=4)[1]
    assert list(a.index) == list(b.index)
    assert list(a.index) != list(c.index)


def test_time_split_holds_out_the_latest_rows(clf_df: pd.DataFrame) -> None:
    shuffled = clf_df.sample(frac=1.0, random_state=0)
    train, test = split_dataset(
        shuffled, target="y", problem_type="classification", time_column="when", test_size=0.2
    )
    assert len(test) == 120
    assert train["when"].max() < test["when"].min()
    # No randomness: a different seed gives the same split.
    again = split_dataset(
        shuffled, target="y", problem_type="classification", time_column="when", seed=99
    )[1]
    assert set(again.index) == set(test.index)


def test_time_split_sends_rows_sharing_the_cutoff_to_the_test_part() -> None:
    df = pd.DataFrame({"day": [1, 1, 2, 2, 3, 3, 3, 3, 4, 4], "y": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]})
    train, test = split_dataset(
        df,
        target="y",
        problem_type="classification",
        time_column="day",
        test_size=0.5,
        min_class_rows=1,
    )
    # The cut-off falls inside day 3: all of day 3 goes to the test part.
    assert sorted(train["day"].unique()) == [1, 2]
    assert sorted(test["day"].unique()) == [3, 4]


def test_time_split_parses_date_strings(clf_df: pd.DataFrame) -> None:
    df = clf_df.assign(when=clf_df["when"].dt.strftime("%Y-%m-%d %H:%M"))
    train, test = split_dataset(df, target="y", problem_type="classification", time_column="when")
    assert pd.to_datetime(train["when"]).max() < pd.to_datetime(test["when"]).min()


def test_time_column_errors_name_the_column(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="time column 'nope' is not in the data"):
        split_dataset(clf_df, target="y", problem_type="classification", time_column="nope")
    bad = clf_df.assign(when="not a date")
    with pytest.raises(DataError, match="time column 'when' has values that are not dates"):
        split_dataset(bad, target="y", problem_type="classification", time_column="when")
    gaps = clf_df.copy()
    gaps.loc[[3, 7], "when"] = pd.NaT
    with pytest.raises(DataError, match=r"'when' has 2 missing values \(rows 3, 7\)"):
        split_dataset(gaps, target="y", problem_type="classification", time_column="when")


def test_time_split_with_one_class_in_a_part_is_refused() -> None:
    df = pd.DataFrame({"t": range(20), "y": [0, 1] * 8 + [1] * 4})
    with pytest.raises(DataError, match="leaves the test part with one class of 'y'"):
        split_dataset(df, target="y", problem_type="classification", time_column="t")


def test_regression_split_is_random_not_stratified(reg_df: pd.DataFrame) -> None:
    train, test = split_dataset(reg_df, target="target", problem_type="regression", test_size=0.3)
    assert len(test) == 120
    assert set(train.index).isdisjoint(test.index)


def test_split_uses_positions_so_a_duplicated_index_is_safe(clf_df: pd.DataFrame) -> None:
    df = clf_df.set_axis(np.zeros(len(clf_df), dtype=int))
    train, test = split_dataset(df, target="y", problem_type="classification")
    assert len(train) + len(test) == len(df)


def test_missing_target_column(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="target column 'churn' is not in the data"):
        split_dataset(clf_df, target="churn", problem_type="classification")


def test_target_with_one_class(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"'y' has only one class \(1\)"):
        split_dataset(clf_df.assign(y=1), target="y", problem_type="classification")


def test_too_few_rows_in_a_class(clf_df: pd.DataFrame) -> None:
    df = clf_df.assign(y=0)
    df.loc[:2, "y"] = 1
    with pytest.raises(DataError, match=r"too few rows per class \(need 5\): 1: 3"):
        split_dataset(df, target="y", problem_type="classification")


def test_missing_target_values_are_named(clf_df: pd.DataFrame) -> None:
    df = clf_df.astype({"y": "float64"})
    df.loc[[5, 9], "y"] = np.nan
    with pytest.raises(DataError, match=r"'y' has 2 missing values \(rows 5, 9\)"):
        split_dataset(df, target="y", problem_type="classification")


def test_regression_needs_a_numeric_target(clf_df: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="regression needs a numeric target"):
        split_dataset(clf_df, target="id", problem_type="regression")


@pytest.mark.parametrize("size", [0, 1, 1.5, -0.1])
def test_test_size_must_be_a_share(clf_df: pd.DataFrame, size: float) -> None:
    with pytest.raises(MLError, match="test_size must be between 0 and 1"):
        split_dataset(clf_df, target="y", problem_type="classification", test_size=size)


def test_unknown_problem_type(clf_df: pd.DataFrame) -> None:
    with pytest.raises(MLError, match="unknown problem type 'ranking'"):
        split_dataset(clf_df, target="y", problem_type="ranking")
