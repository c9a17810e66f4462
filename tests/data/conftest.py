"""Shared fixtures for the data tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def customers() -> pd.DataFrame:
    """A small customer table with every column kind a contract knows."""
    rng = np.random.default_rng(7)
    n = 200
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tenure_months": pd.array(rng.integers(0, 120, n), dtype="Int64"),
            "monthly_fee": rng.normal(30.0, 5.0, n).round(2),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n)),
            "email": [f"user{i}@example.org" for i in range(n)],
            "signup_date": pd.date_range("2021-01-01", periods=n, freq="D"),
            "churned": rng.random(n) > 0.7,
        }
    )
    frame.loc[5, "tenure_months"] = pd.NA
    frame.loc[9, "monthly_fee"] = np.nan
    frame.loc[11, "email"] = None
    return frame
