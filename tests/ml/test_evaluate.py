from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from opsloop.errors import MLError
from opsloop.ml import (
    EvaluationResult,
    build_preprocessor,
    evaluate_gates,
    evaluate_model,
    infer_feature_types,
    split_dataset,
    write_report,
)

from .conftest import classification_frame, regression_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fit(df: pd.DataFrame, target: str, estimator: object, drop: tuple[str, ...] = ()) -> Pipeline:
    spec = infer_feature_types(
        df, target, drop=list(drop), time_column="when" if "when" in df else None
    )
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", estimator)]).fit(
        df[spec.columns], df[target]
    )


@pytest.fixture(scope="module")
def clf_parts() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_dataset(classification_frame(800), target="y", problem_type="classification")


def test_classification_report_with_champion_and_gates(
    clf_parts: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = clf_parts
    model = _fit(train, "y", LogisticRegression())
    champion = _fit(train, "y", LogisticRegression(C=0.001), drop=("signal",))
    result = evaluate_model(
        model,
        test,
        target="y",
        problem_type="classification",
        out_dir=tmp_path / "eval",
        champion=champion,
        gates_config={"roc_auc": {"min": 0.7}, "vs_champion": {"metric": "roc_auc"}},
    )
    out = tmp_path / "eval"
    expected = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(test["y"], expected))
    assert set(result.metrics) == {
        "roc_auc",
        "pr_auc",
        "f1",
        "precision",
        "recall",
        "accuracy",
        "log_loss",
    }
    assert result.higher_is_better["log_loss"] is False
    assert result.champion_metrics is not None
    assert result.champion_metrics["roc_auc"] < result.metrics["roc_auc"]
    assert result.classes == [0, 1]
    assert result.confusion_matrix is not None
    assert sum(map(sum, result.confusion_matrix)) == len(test)
    assert result.plots == {
        "confusion_matrix": "confusion_matrix.png",
        "roc_curve": "roc_curve.png",
        "pr_curve": "pr_curve.png",
    }
    for file in result.plots.values():
        assert (out / file).read_bytes().startswith(PNG_MAGIC)
    assert result.gates is not None and result.gates_passed

    page = (out / "report.html").read_text()
    assert Path(result.report_path) == out / "report.html"
    assert page.count("data:image/png;base64,") == 3  # self-contained
    assert "champion" in page and "All quality gates passed" in page
    assert f"{result.metrics['roc_auc']:.4f}" in page
    assert f"{result.champion_metrics['roc_auc']:.4f}" in page
    saved = EvaluationResult.model_validate_json((out / "evaluation.json").read_text())
    assert saved == result


def test_champion_that_cannot_predict_is_reported_not_raised(
    clf_parts: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = clf_parts
    model = _fit(train, "y", LogisticRegression())
    champion = _fit(train.assign(legacy=1.0), "y", LogisticRegression())
    result = evaluate_model(
        model,
        test,
        target="y",
        problem_type="classification",
        out_dir=tmp_path,
        champion=champion,
    )
    assert result.champion_metrics is None
    assert result.champion_error is not None and "legacy" in result.champion_error
    assert "The champion could not be scored" in (tmp_path / "report.html").read_text()


def test_gates_computed_later_can_be_added_to_the_report(
    clf_parts: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = clf_parts
    result = evaluate_model(
        _fit(train, "y", LogisticRegression()),
        test,
        target="y",
        problem_type="classification",
        out_dir=tmp_path,
    )
    assert result.gates is None and result.gates_passed is None
    page = (tmp_path / "report.html").read_text()
    assert "No champion" in page and "Quality gates" not in page
    gates = evaluate_gates({"roc_auc": {"min": 0.99}}, result.metrics, contract_passed=True)
    updated = write_report(result, tmp_path, gates=gates)
    assert updated.gates_passed is False
    page = (tmp_path / "report.html").read_text()
    assert "Quality gates failed" in page and "below the minimum 0.99" in page
    assert json.loads((tmp_path / "evaluation.json").read_text())["gates"][0]["passed"] is False


def test_multiclass_curves_per_class(tmp_path: Path) -> None:
    df = classification_frame(600)
    df["y"] = np.select([df["signal"] < -0.5, df["signal"] < 0.5], ["low", "mid"], "high")
    train, test = split_dataset(df, target="y", problem_type="classification")
    result = evaluate_model(
        _fit(train, "y", LogisticRegression()),
        test,
        target="y",
        problem_type="classification",
        out_dir=tmp_path,
    )
    assert result.classes == ["high", "low", "mid"]
    assert result.metrics["roc_auc"] > 0.9
    assert np.array(result.confusion_matrix).shape == (3, 3)
    assert (tmp_path / "roc_curve.png").exists()


def test_regression_residual_plot_and_metrics(tmp_path: Path) -> None:
    df = regression_frame(400)
    train, test = split_dataset(df, target="target", problem_type="regression")
    result = evaluate_model(
        _fit(train, "target", Ridge()),
        test,
        target="target",
        problem_type="regression",
        out_dir=tmp_path,
        champion=_fit(train, "target", Ridge(alpha=1e4)),
    )
    assert set(result.metrics) == {"rmse", "mae", "r2"}
    assert result.metrics["r2"] > 0.9
    assert result.champion_metrics is not None
    assert result.champion_metrics["rmse"] > result.metrics["rmse"]
    assert result.plots == {"residuals": "residuals.png"}
    assert (tmp_path / "residuals.png").read_bytes().startswith(PNG_MAGIC)
    assert result.confusion_matrix is None and result.classes is None
    assert "better" in (tmp_path / "report.html").read_text()


def test_model_needing_a_missing_column(
    clf_parts: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = clf_parts
    model = _fit(train, "y", LogisticRegression())
    with pytest.raises(MLError, match=r"the model needs column\(s\) missing from the test data"):
        evaluate_model(
            model,
            test.drop(columns=["signal"]),
            target="y",
            problem_type="classification",
            out_dir=tmp_path,
        )
