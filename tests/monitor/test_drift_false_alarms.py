"""False alarms of the default drift verdicts on data that did not drift, and the drift the
quickstart injects still found (``benchmarks/drift_false_alarms.py`` measures the same with
more seeds and prints the tables)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.data.reference import ReferenceProfile, build_reference_profile
from opsloop.loop.traffic import drifted_sample
from opsloop.ml.features import infer_feature_types
from opsloop.ml.split import split_dataset
from opsloop.monitor import compute_drift

CHURN = Path(__file__).resolve().parents[2] / "examples" / "churn"
#: Most windows in a hundred, per feature, that may be called drifted when nothing drifted.
LIMIT = 0.05
SEEDS = 100

NUMERIC = ["normal", "lognormal", "poisson", "four_values"]
CATEGORICAL = ["rare_levels", "boolean"]
RARE_P = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.01, 0.005, 0.003, 0.002])


def _synthetic(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(50.0, 10.0, n),
            "lognormal": rng.lognormal(0.0, 1.0, n),
            "poisson": rng.poisson(2.0, n).astype(np.int64),  # tied values in the KS test
            "four_values": rng.binomial(3, 0.3, n).astype(np.float64),  # tested as values
            "rare_levels": rng.choice([f"level_{i}" for i in range(RARE_P.size)], n, p=RARE_P),
            "boolean": rng.random(n) < 0.6,
        }
    )


def _rates(
    windows: Callable[[np.random.Generator], tuple[ReferenceProfile, pd.DataFrame]],
    seeds: int,
) -> dict[str, float]:
    flagged: dict[str, int] = {}
    for seed in range(seeds):
        profile, window = windows(np.random.default_rng([11, seed]))
        for f in compute_drift(profile, window).features.values():
            flagged[f.name] = flagged.get(f.name, 0) + int(f.drift_detected)
    return {name: n / seeds for name, n in flagged.items()}


@pytest.mark.parametrize(
    ("n_ref", "n"),
    [(19_184, 100), (19_184, 300), (19_184, 5_000), (1_000, 100), (1_000, 5_000)],
)
def test_stable_synthetic_columns_rarely_drift(n_ref: int, n: int) -> None:
    def windows(rng: np.random.Generator) -> tuple[ReferenceProfile, pd.DataFrame]:
        reference = _synthetic(rng, n_ref)
        profile = build_reference_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL)
        return profile, _synthetic(rng, n)

    rates = _rates(windows, SEEDS)
    assert set(rates) == {*NUMERIC, *CATEGORICAL}
    assert max(rates.values()) < LIMIT, rates


@cache
def _generate() -> Callable[..., pd.DataFrame]:
    spec = importlib.util.spec_from_file_location("churn_generate", CHURN / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate: Callable[..., pd.DataFrame] = module.generate
    return generate


def _training_part(data: pd.DataFrame) -> pd.DataFrame:
    train, _ = split_dataset(
        data, target="churned", problem_type="classification", time_column="signup_date"
    )
    return train


@cache
def _quickstart() -> tuple[pd.DataFrame, ReferenceProfile]:
    """The shipped data, and the reference profile the quickstart's first model gets: of the
    rows it was trained and tested on, which under the split are all of them."""
    data = pd.read_parquet(CHURN / "data" / "customers.parquet")
    train = _training_part(data)
    spec = infer_feature_types(train, "churned", drop=["customer_id"], time_column="signup_date")
    profile = build_reference_profile(
        data[list(spec.dtypes)], numeric=spec.numeric, categorical=spec.categorical
    )
    return data, profile


def test_stable_churn_traffic_rarely_drifts() -> None:
    """Windows of the quickstart's size from the population the reference describes: the
    churn generator, drawn again with other seeds."""
    _, profile = _quickstart()
    features = [*profile.features]

    def windows(rng: np.random.Generator) -> tuple[ReferenceProfile, pd.DataFrame]:
        fresh = _generate()(6_000, seed=int(rng.integers(2**31)))
        return profile, fresh[features].sample(n=600, random_state=rng.integers(2**31))

    rates = _rates(windows, 60)
    assert set(rates) == set(features)
    assert max(rates.values()) < LIMIT, rates


def test_the_quickstart_before_its_drift_rarely_drifts() -> None:
    """The quickstart's own windows before it injects drift (level 0): customers drawn from
    the data the model was trained and tested on."""
    data, profile = _quickstart()
    features = [*profile.features]

    def windows(rng: np.random.Generator) -> tuple[ReferenceProfile, pd.DataFrame]:
        inputs, _ = drifted_sample(data, 600, 0.0, seed=int(rng.integers(2**31)))
        return profile, inputs

    rates = _rates(windows, 60)
    assert set(rates) == set(features)
    assert max(rates.values()) < LIMIT, rates


@pytest.mark.parametrize("level", [0.8, 1.0])
def test_the_drift_the_quickstart_injects_is_found_in_every_window(level: float) -> None:
    data, profile = _quickstart()
    for seed in range(20):
        inputs, _ = drifted_sample(data, 600, level, seed=seed)
        result = compute_drift(profile, inputs)
        # The two inputs the drift moves (it leaves the total charges as they were).
        assert {"tenure_months", "monthly_charges"} <= set(result.drifted_features), (
            result.drifted_features
        )
