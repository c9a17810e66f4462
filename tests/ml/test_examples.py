"""The example projects: their data is reproducible, valid and carries the promised signal."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from opsloop.ml import (
    build_preprocessor,
    get_candidate,
    get_metric,
    infer_feature_types,
    score_model,
    split_dataset,
    validate_gates,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((EXAMPLES / name / "opsloop.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return pd.read_parquet(EXAMPLES / "churn" / "data" / "customers.parquet")


def test_churn_data_is_what_the_generator_makes(customers: pd.DataFrame) -> None:
    generated = _load(EXAMPLES / "churn" / "generate.py").generate()
    pd.testing.assert_frame_equal(customers, generated)


def test_churn_data_shape(customers: pd.DataFrame) -> None:
    path = EXAMPLES / "churn" / "data" / "customers.parquet"
    assert path.stat().st_size < 2_000_000
    assert len(customers) >= 20_000
    assert 0.20 <= customers["churned"].mean() <= 0.30
    assert customers["customer_id"].is_unique
    assert pd.api.types.is_datetime64_any_dtype(customers["signup_date"])
    assert customers["tenure_months"].min() >= 0 and customers["tenure_months"].notna().all()
    assert set(customers["plan"].cat.categories) == {"basic", "plus", "pro"}
    assert customers.isna().any().sum() >= 3  # missing values in several columns


def test_churn_config_is_consistent_with_the_data(customers: pd.DataFrame) -> None:
    config = _config("churn")
    problem = config["problem"]
    get_metric(problem["metric"], problem["type"])
    validate_gates(config["evaluate"]["gates"], problem["type"])
    for name in config["train"]["candidates"]:
        get_candidate(name)
    assert (EXAMPLES / "churn" / config["data"]["source"]).exists()
    columns = set(customers.columns)
    assert problem["target"] in columns and config["data"]["time_column"] in columns
    assert set(config["features"]["drop"]) <= columns
    assert set(config["contract"]["columns"]) <= columns


def test_churn_signal_lets_a_plain_model_pass_the_gate(customers: pd.DataFrame) -> None:
    config = _config("churn")
    train, test = split_dataset(
        customers, target="churned", problem_type="classification", time_column="signup_date"
    )
    spec = infer_feature_types(
        train, "churned", drop=config["features"]["drop"], time_column="signup_date"
    )
    model = Pipeline(
        [("preprocess", build_preprocessor(spec)), ("model", LogisticRegression(max_iter=1000))]
    ).fit(train[spec.columns], train["churned"])
    auc = score_model(model, test, test["churned"], metric="roc_auc", problem_type="classification")
    assert config["evaluate"]["gates"]["roc_auc"]["min"] <= auc <= 0.90
    # region carries no signal by construction, so it is not needed for that score.
    assert "region" in spec.categorical


def test_breast_cancer_data_is_what_prepare_writes() -> None:
    shipped = pd.read_csv(EXAMPLES / "breast_cancer" / "data" / "breast_cancer.csv")
    prepared = _load(EXAMPLES / "breast_cancer" / "prepare.py").prepare()
    pd.testing.assert_frame_equal(shipped, prepared, check_exact=False, rtol=1e-9)
    assert len(shipped) == 569 and int(shipped["malignant"].sum()) == 212


def test_breast_cancer_config_is_consistent() -> None:
    config = _config("breast_cancer")
    problem = config["problem"]
    validate_gates(config["evaluate"]["gates"], problem["type"])
    for name in config["train"]["candidates"]:
        get_candidate(name)
    shipped = pd.read_csv(EXAMPLES / "breast_cancer" / config["data"]["source"])
    assert problem["target"] in shipped.columns
    assert set(config["contract"]["columns"]) <= set(shipped.columns)
