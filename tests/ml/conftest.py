"""Small, seeded data frames for the ML tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def classification_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A binary problem with numeric, categorical, boolean, datetime and id columns."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    logit = 1.5 * signal + 1.0 * (colour == "red") - 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    noise = rng.normal(size=n)
    noise[rng.random(n) < 0.1] = np.nan
    colour_with_gaps = colour.astype(object)
    colour_with_gaps[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "id": [f"row-{i:05d}" for i in range(n)],
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
            "signal": signal,
            "noise": noise,
            "count": rng.poisson(2, size=n),
            "colour": pd.Series(colour_with_gaps, dtype="str"),
            "flag": rng.random(n) < 0.5,
            "y": y,
        }
    )


def regression_frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """A regression problem with one numeric and one categorical signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    group = rng.choice(["a", "b"], size=n)
    y = 3.0 * x + 2.0 * (group == "a") + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"x": x, "group": group, "z": rng.normal(size=n), "target": y})


@pytest.fixture
def clf_df() -> pd.DataFrame:
    return classification_frame()


@pytest.fixture
def reg_df() -> pd.DataFrame:
    return regression_frame()
