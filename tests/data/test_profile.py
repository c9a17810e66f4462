"""Data profiles and all-empty columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from opsloop.data import DataProfile, all_nan_columns, profile_frame, render_profile


def test_profile_numbers_times_and_text(customers: pd.DataFrame) -> None:
    profile = profile_frame(customers)
    assert profile.rows == len(customers)
    assert [c.name for c in profile.columns] == list(customers.columns)
    fee = profile.column("monthly_fee")
    assert fee.null_fraction == pytest.approx(1 / len(customers))
    assert fee.min == pytest.approx(customers["monthly_fee"].min())
    assert fee.mean == pytest.approx(customers["monthly_fee"].mean())
    tenure = profile.column("tenure_months")
    assert tenure.dtype == "Int64"
    assert tenure.max == float(customers["tenure_months"].max())
    plan = profile.column("plan")
    assert plan.distinct == 3 and plan.min is None and plan.mean is None
    signup = profile.column("signup_date")
    assert signup.min == "2021-01-01T00:00:00" and signup.mean is None
    churned = profile.column("churned")
    assert churned.distinct == 2 and churned.mean is None  # booleans are not numbers here
    assert profile.column("customer_id").distinct == len(customers)
    with pytest.raises(KeyError):
        profile.column("nope")
    assert DataProfile.model_validate(json.loads(profile.model_dump_json())) == profile


def test_profile_edge_cases() -> None:
    frame = pd.DataFrame(
        {
            "empty": [np.nan, np.nan],
            "inf": [np.inf, 1.0],
            "lists": [[1], [1]],
        }
    )
    profile = profile_frame(frame)
    assert profile.column("empty").null_fraction == 1.0
    assert profile.column("empty").min is None
    assert profile.column("inf").max is None  # not a finite number: left out of JSON
    assert profile.column("lists").distinct == 1
    json.dumps(profile.model_dump(mode="json"))
    assert profile_frame(frame.iloc[:0]).column("inf").null_fraction == 0.0


def test_all_nan_columns() -> None:
    frame = pd.DataFrame(
        {"a": [1, None], "b": [None, None], "c": [np.nan, np.nan], "d": ["", None]}
    )
    assert all_nan_columns(frame) == ["b", "c"]
    assert all_nan_columns(frame.iloc[:0]) == ["a", "b", "c", "d"]


def test_render_profile(customers: pd.DataFrame) -> None:
    console = Console(width=160, record=True)
    console.print(render_profile(profile_frame(customers)))
    text = console.export_text()
    assert "Data profile (200 rows)" in text
    assert "monthly_fee" in text and "0.5%" in text
