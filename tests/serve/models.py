"""Real models for the server tests: small scikit-learn pipelines trained on seeded data, and
wrappers that count, slow down or fail predictions on purpose."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from opsloop.serve import ColumnSpec, SklearnServable, signature_from_frame


def churn_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed numeric and categorical columns with a learnable target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype("int64"),
            "income": rng.normal(50.0, 12.0, n),
            "city": pd.Series(rng.choice(["paris", "lyon", "nice"], n), dtype=object),
            "member": rng.random(n) > 0.5,
        }
    )
    y = ((df["income"] > 50) ^ (df["city"] == "nice")).astype(int).to_numpy()
    return df, y


@cache
def churn_pipeline(seed: int = 0, c: float = 1.0) -> Pipeline:
    """ColumnTransformer (scaled numbers + one-hot categories) and a logistic regression."""
    df, y = churn_frame(seed=seed)
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "member"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=c))]).fit(df, y)


@cache
def yes_no_pipeline() -> Pipeline:
    """The churn pipeline fitted on text classes: ``"no"`` and ``"yes"``."""
    df, y = churn_frame()
    return clone(churn_pipeline()).fit(df, np.where(y == 1, "yes", "no"))


def yes_no_model(version: str = "1") -> SklearnServable:
    """A servable churn classifier whose classes are words."""
    return SklearnServable("yesno", version, yes_no_pipeline(), churn_signature())


def churn_signature() -> list[ColumnSpec]:
    """The churn frame's signature (object dtype for the city column)."""
    df, _ = churn_frame(n=5)
    return signature_from_frame(df)


def churn_model(version: str = "1", *, c: float = 1.0, name: str = "churn") -> SklearnServable:
    """A servable churn classifier."""
    return SklearnServable(name, version, churn_pipeline(c=c), churn_signature())


@cache
def numeric_pipeline(features: int = 4) -> Pipeline:
    """StandardScaler + LogisticRegression on ``features`` float columns."""
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(400, features)), columns=[f"f{i}" for i in range(features)])
    y = (x.sum(axis=1) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def numeric_model(version: str = "1", features: int = 4, name: str = "num") -> SklearnServable:
    """A servable classifier over float columns f0..f{n-1}."""
    sig = [ColumnSpec(name=f"f{i}", dtype="float64") for i in range(features)]
    return SklearnServable(name, version, numeric_pipeline(features), sig)


def regressor_model(version: str = "1") -> SklearnServable:
    """A linear regression (predict, no predict_proba) over two float columns."""
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    est = LinearRegression().fit(x, 2 * x["a"] + x["b"])
    return SklearnServable("reg", version, est, signature_from_frame(x))


class Wrapped:
    """A ServableModel that delegates to another and can count, delay or fail.

    Args:
        inner: The model to delegate to.
        version: Version to report (defaults to the inner one's).
        delay: Seconds to sleep in every predict.
        fail_on: Fail a predict whose frame has this value in its first column.
        fail_load: Fail every predict (so warm-up fails).
    """

    def __init__(
        self,
        inner: Any,
        *,
        version: str | None = None,
        delay: float = 0.0,
        fail_on: Any = None,
        fail_load: bool = False,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = version or inner.version
        self.signature = inner.signature
        self.delay = delay
        self.fail_on = fail_on
        self.fail_load = fail_load
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        with self._lock:
            self.calls.append(len(df))
        if self.fail_load:
            raise RuntimeError("this model cannot predict")
        if self.fail_on is not None and (df.iloc[:, 0] == self.fail_on).any():
            raise ValueError(f"poison value {self.fail_on!r}")
        if self.delay:
            time.sleep(self.delay)
        return self.inner.predict(df)


def load(uri: str) -> Any:
    """A model loader for the admin endpoint and the CLI: ``test:KIND/VERSION`` (or
    ``models:/KIND/VERSION``, as the GitOps runtimes name models)."""
    kind, _, version = uri.removeprefix("test:").removeprefix("models:/").partition("/")
    if kind == "churn":
        return churn_model(version or "1")
    if kind == "churn-strict":
        return churn_model(version or "1", c=0.01)
    if kind == "num":
        return numeric_model(version or "1")
    if kind == "reg":
        return regressor_model(version or "1")
    if kind == "broken":
        return Wrapped(churn_model(version or "1"), fail_load=True)
    raise ValueError(f"unknown test model {uri!r}")
