from __future__ import annotations

from collections.abc import Iterator

import optuna
import pandas as pd
import pytest

from opsloop.errors import MissingDependencyError, MLError
from opsloop.ml import (
    DEFAULT_CANDIDATES,
    Candidate,
    ProblemType,
    available_candidates,
    build_preprocessor,
    candidate_names,
    get_candidate,
    infer_feature_types,
    register_candidate,
    unregister_candidate,
)
from opsloop.ml.candidates import _linear_defaults, _linear_make, _linear_suggest

from .conftest import classification_frame, regression_frame

ALL = ["linear", "random_forest", "hist_gradient_boosting", "lightgbm", "xgboost"]


@pytest.fixture
def fake_name() -> Iterator[str]:
    yield "needs_missing_package"
    unregister_candidate("needs_missing_package")


def test_names_and_aliases() -> None:
    assert set(ALL) <= set(candidate_names())
    assert {"logistic_regression", "ridge"} <= set(candidate_names())
    assert get_candidate("logistic_regression").name == "linear"
    assert set(DEFAULT_CANDIDATES) <= set(candidate_names())
    # The boost extra is installed in the test environment.
    assert set(available_candidates()) == set(ALL)


def test_linear_is_logistic_for_classification_and_ridge_for_regression() -> None:
    linear = get_candidate("ridge")
    assert type(linear.build("classification")).__name__ == "LogisticRegression"
    assert type(linear.build("regression")).__name__ == "Ridge"


def test_unknown_candidate_lists_the_known_ones() -> None:
    with pytest.raises(
        MLError, match=r"unknown model candidate 'svm'; known candidates: .*lightgbm"
    ):
        get_candidate("svm")


def test_missing_optional_package_names_the_extra(fake_name: str) -> None:
    register_candidate(
        Candidate(
            name=fake_name,
            summary="needs a package that is not installed",
            suggest=_linear_suggest,
            make=_linear_make,
            defaults=_linear_defaults,
            requires="opsloop_no_such_module",
            extra="boost",
        )
    )
    assert fake_name not in available_candidates()
    assert get_candidate(fake_name, check_installed=False).name == fake_name
    with pytest.raises(MissingDependencyError) as info:
        get_candidate(fake_name)
    assert info.value.package == "opsloop_no_such_module"
    assert info.value.hint == "pip install 'opsloop[boost]'"


def test_names_cannot_be_taken_twice(fake_name: str) -> None:
    clone = Candidate(
        name=fake_name,
        summary="",
        suggest=_linear_suggest,
        make=_linear_make,
        defaults=_linear_defaults,
        aliases=("random_forest",),
    )
    with pytest.raises(MLError, match="already registered: random_forest"):
        register_candidate(clone)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("problem_type", ["classification", "regression"])
def test_every_candidate_suggests_builds_and_fits(name: str, problem_type: ProblemType) -> None:
    df, target = (
        (classification_frame(200), "y")
        if problem_type == "classification"
        else (regression_frame(200), "target")
    )
    spec = infer_feature_types(df, target, time_column="when" if "when" in df else None)
    x = build_preprocessor(spec).fit_transform(df[spec.columns])
    candidate = get_candidate(name)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    # The defaults must lie inside the search space (Optuna warns otherwise: an error here).
    study.enqueue_trial(candidate.defaults(problem_type))
    first = study.ask()
    params = candidate.suggest(first, problem_type)
    assert params == candidate.defaults(problem_type)
    second = candidate.suggest(study.ask(), problem_type)
    model = candidate.build(problem_type, second, seed=1).fit(x, df[target])
    assert len(model.predict(x)) == len(df)


def test_xgboost_refuses_text_labels() -> None:
    xgb = get_candidate("xgboost")
    assert xgb.check_target is not None
    message = xgb.check_target(pd.Series(["a", "b"]), "classification")
    assert message is not None and "needs class labels 0..1" in message
    assert xgb.check_target(pd.Series([0, 1, 1]), "classification") is None
    assert xgb.check_target(pd.Series([0.5, 2.0]), "regression") is None
