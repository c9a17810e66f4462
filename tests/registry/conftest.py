"""Fixtures of the registry tests: a mixed-type frame and a fitted Pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.store import Store, open_store


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """Numeric and categorical features."""
    rng = np.random.default_rng(7)
    n = 240
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype("int64"),
            "income": rng.normal(50_000, 12_000, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )


@pytest.fixture(scope="session")
def labels(frame: pd.DataFrame) -> np.ndarray:
    """Three classes that depend on the features, so predictions are not constant."""
    score = frame["income"] / 10_000 + (frame["city"] == "nice") * 2 - frame["age"] / 30
    return np.asarray(np.digitize(score, [2.0, 4.0]))


def _features() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )


@pytest.fixture(scope="session")
def classifier(frame: pd.DataFrame, labels: np.ndarray) -> Pipeline:
    """A fitted Pipeline: ColumnTransformer (numeric + categorical) then LogisticRegression."""
    return Pipeline([("features", _features()), ("clf", LogisticRegression(max_iter=500))]).fit(
        frame, labels
    )


@pytest.fixture(scope="session")
def regressor(frame: pd.DataFrame) -> Pipeline:
    """A fitted regression Pipeline."""
    y = frame["income"] / 1000 + frame["age"]
    return Pipeline([("features", _features()), ("reg", Ridge())]).fit(frame, y)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    """A real SQLite metadata store and a file artifact store, both on tmp_path."""
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}", actor="tester")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    try:
        yield store, artifacts
    finally:
        store.close()
