"""Model candidates by name, each with an Optuna search space and a factory.

Search spaces are bounded (tree counts, depths, iterations) so that one trial on tens of
thousands of rows takes seconds, not minutes: tuning many trials beats tuning few huge ones.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import MissingDependencyError, MLError
from opsloop.ml.metrics import ProblemType, check_problem_type

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

__all__ = [
    "DEFAULT_CANDIDATES",
    "Candidate",
    "available_candidates",
    "candidate_names",
    "get_candidate",
    "register_candidate",
    "unregister_candidate",
]

Params = dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    """A model family that tuning can try.

    Attributes:
        name: Canonical name, as written in ``train.candidates``.
        summary: One line for listings.
        suggest: ``(trial, problem_type) -> params``: samples one point of the search space.
        make: ``(problem_type, params, seed, n_jobs) -> estimator``: an unfitted estimator.
        defaults: ``problem_type -> params``: a good starting point, tried first.
        requires: Importable module the candidate needs, when it is optional.
        extra: The opsloop extra that installs ``requires``.
        aliases: Other names accepted for this candidate.
        check_target: Optional ``(y, problem_type) -> problem or None``, for targets the
            model cannot take.
    """

    name: str
    summary: str
    suggest: Callable[[optuna.Trial, ProblemType], Params]
    make: Callable[[ProblemType, Params, int, int], Any]
    defaults: Callable[[ProblemType], Params]
    requires: str | None = None
    extra: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    check_target: Callable[[pd.Series, ProblemType], str | None] | None = None

    def is_available(self) -> bool:
        """Whether the optional dependency, if any, can be imported."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None

    def require(self) -> None:
        """Raise :class:`MissingDependencyError` when the optional dependency is missing."""
        if not self.is_available():
            raise MissingDependencyError(str(self.requires), self.extra or self.name)

    def build(
        self,
        problem_type: str,
        params: Params | None = None,
        *,
        seed: int = 42,
        n_jobs: int = 1,
    ) -> Any:
        """Return an unfitted estimator with ``params`` (the defaults when omitted)."""
        ptype = check_problem_type(problem_type)
        self.require()
        chosen = self.defaults(ptype) if params is None else params
        return self.make(ptype, chosen, seed, n_jobs)


_REGISTRY: dict[str, Candidate] = {}
_ALIASES: dict[str, str] = {}


def register_candidate(candidate: Candidate, *, replace: bool = False) -> None:
    """Add a candidate (and its aliases) to the registry.

    Raises:
        MLError: The name or an alias is taken and ``replace`` is false.
    """
    names = (candidate.name, *candidate.aliases)
    if not replace:
        taken = [n for n in names if n in _REGISTRY or n in _ALIASES]
        if taken:
            raise MLError(f"candidate name(s) already registered: {', '.join(taken)}")
    _REGISTRY[candidate.name] = candidate
    for alias in candidate.aliases:
        _ALIASES[alias] = candidate.name


def unregister_candidate(name: str) -> None:
    """Remove a candidate and its aliases from the registry (unknown names are ignored)."""
    candidate = _REGISTRY.pop(_ALIASES.get(name, name), None)
    if candidate is not None:
        for alias in candidate.aliases:
            _ALIASES.pop(alias, None)


def candidate_names(*, aliases: bool = True) -> list[str]:
    """All registered names (with aliases unless told otherwise), sorted."""
    names = set(_REGISTRY)
    if aliases:
        names |= set(_ALIASES)
    return sorted(names)


def available_candidates() -> list[str]:
    """Canonical names of the candidates whose dependencies are installed."""
    return [name for name, c in sorted(_REGISTRY.items()) if c.is_available()]


def get_candidate(name: str, *, check_installed: bool = True) -> Candidate:
    """Look a candidate up by name or alias.

    Raises:
        MLError: No candidate has that name (the message lists the known ones).
        MissingDependencyError: The candidate needs a package that is not installed.
    """
    canonical = _ALIASES.get(name, name)
    if canonical not in _REGISTRY:
        # Lazy imports here and below (noqa: PLC0415) of sklearn, lightgbm, xgboost, opsloop.spec:
        # each loads only where it is used, so importing this module stays light.
        from opsloop.spec.loader import did_you_mean  # noqa: PLC0415

        known = candidate_names()
        raise MLError(
            f"unknown model candidate '{name}'; known candidates: {', '.join(known)}"
            f"{did_you_mean(name, [*known, *_ALIASES])}"
        )
    candidate = _REGISTRY[canonical]
    if check_installed:
        candidate.require()
    return candidate


def _labels_are_codes(y: pd.Series, ptype: ProblemType) -> str | None:
    if ptype == "regression":
        return None
    labels = np.unique(y.to_numpy())
    if pd.api.types.is_numeric_dtype(y) and np.array_equal(labels, np.arange(len(labels))):
        return None
    return (
        f"needs class labels 0..{len(labels) - 1}, but the target has {labels[:5].tolist()}; "
        "encode the target as integers in the data"
    )


# --- linear ----------------------------------------------------------------------------------


def _linear_suggest(trial: optuna.Trial, ptype: ProblemType) -> Params:
    if ptype == "classification":
        return {
            "C": trial.suggest_float("C", 1e-3, 1e2, log=True),
            "class_weight": trial.suggest_categorical("class_weight", [None, "balanced"]),
        }
    return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}


def _linear_defaults(ptype: ProblemType) -> Params:
    return {"C": 1.0, "class_weight": None} if ptype == "classification" else {"alpha": 1.0}


def _linear_make(ptype: ProblemType, params: Params, seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

    if ptype == "classification":
        return LogisticRegression(max_iter=2000, random_state=seed, **params)
    return Ridge(random_state=seed, **params)


# --- random forest ---------------------------------------------------------------------------


def _rf_suggest(trial: optuna.Trial, ptype: ProblemType) -> Params:
    params: Params = {
        "n_estimators": trial.suggest_int("n_estimators", 50, 200, step=25),
        "max_depth": trial.suggest_int("max_depth", 4, 14),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 50, log=True),
        "max_features": trial.suggest_float("max_features", 0.1, 0.7),
        # Bootstrap samples smaller than the data keep each tree cheap and decorrelated; with
        # the depth bound this keeps a fit on ten thousand rows around a second.
        "max_samples": trial.suggest_float("max_samples", 0.2, 0.7),
    }
    if ptype == "classification":
        params["class_weight"] = trial.suggest_categorical(
            "class_weight", [None, "balanced_subsample"]
        )
    return params


def _rf_defaults(ptype: ProblemType) -> Params:
    params: Params = {
        "n_estimators": 100,
        "max_depth": 10,
        "min_samples_leaf": 5,
        "max_features": 0.3,
        "max_samples": 0.5,
    }
    if ptype == "classification":
        params["class_weight"] = None
    return params


def _rf_make(ptype: ProblemType, params: Params, seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: PLC0415

    cls = RandomForestClassifier if ptype == "classification" else RandomForestRegressor
    return cls(random_state=seed, n_jobs=n_jobs, **params)


# --- histogram gradient boosting -------------------------------------------------------------


def _hgb_suggest(trial: optuna.Trial, ptype: ProblemType) -> Params:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("max_iter", 50, 400, step=50),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.3, 1.0),
    }


def _hgb_defaults(ptype: ProblemType) -> Params:
    return {
        "learning_rate": 0.1,
        "max_iter": 200,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1e-6,
        "max_features": 1.0,
    }


def _hgb_make(ptype: ProblemType, params: Params, seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: PLC0415

    cls = (
        HistGradientBoostingClassifier
        if ptype == "classification"
        else HistGradientBoostingRegressor
    )
    # Early stopping on an inner validation share bounds the real number of iterations.
    return cls(random_state=seed, early_stopping=True, n_iter_no_change=15, **params)


# --- LightGBM --------------------------------------------------------------------------------


def _boost_common(trial: optuna.Trial) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-6, 10.0, log=True),
    }


def _lgbm_suggest(trial: optuna.Trial, ptype: ProblemType) -> Params:
    params = _boost_common(trial)
    params["num_leaves"] = trial.suggest_int("num_leaves", 8, 64, log=True)
    params["min_child_samples"] = trial.suggest_int("min_child_samples", 5, 200, log=True)
    return params


def _lgbm_defaults(ptype: ProblemType) -> Params:
    return {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1e-3,
        "num_leaves": 31,
        "min_child_samples": 20,
    }


def _lgbm_make(ptype: ProblemType, params: Params, seed: int, n_jobs: int) -> Any:
    import lightgbm  # noqa: PLC0415

    cls = lightgbm.LGBMClassifier if ptype == "classification" else lightgbm.LGBMRegressor
    # subsample only acts with a bagging frequency; verbose=-1 silences per-fit chatter.
    return cls(random_state=seed, n_jobs=n_jobs, subsample_freq=1, verbose=-1, **params)


# --- XGBoost ---------------------------------------------------------------------------------


def _xgb_suggest(trial: optuna.Trial, ptype: ProblemType) -> Params:
    params = _boost_common(trial)
    params["max_depth"] = trial.suggest_int("max_depth", 3, 8)
    params["min_child_weight"] = trial.suggest_float("min_child_weight", 0.5, 20.0, log=True)
    return params


def _xgb_defaults(ptype: ProblemType) -> Params:
    return {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "max_depth": 5,
        "min_child_weight": 1.0,
    }


def _xgb_make(ptype: ProblemType, params: Params, seed: int, n_jobs: int) -> Any:
    import xgboost  # noqa: PLC0415

    cls = xgboost.XGBClassifier if ptype == "classification" else xgboost.XGBRegressor
    return cls(random_state=seed, n_jobs=n_jobs, tree_method="hist", verbosity=0, **params)


DEFAULT_CANDIDATES: tuple[str, ...] = (
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
)
"""Candidates tried when the configuration names none; all ship with scikit-learn."""

for _candidate in (
    Candidate(
        name="linear",
        summary="logistic regression (classification) or ridge regression (regression)",
        suggest=_linear_suggest,
        make=_linear_make,
        defaults=_linear_defaults,
        aliases=("logistic_regression", "ridge"),
    ),
    Candidate(
        name="random_forest",
        summary="random forest of bounded depth",
        suggest=_rf_suggest,
        make=_rf_make,
        defaults=_rf_defaults,
    ),
    Candidate(
        name="hist_gradient_boosting",
        summary="scikit-learn histogram gradient boosting with early stopping",
        suggest=_hgb_suggest,
        make=_hgb_make,
        defaults=_hgb_defaults,
    ),
    Candidate(
        name="lightgbm",
        summary="LightGBM gradient boosting",
        suggest=_lgbm_suggest,
        make=_lgbm_make,
        defaults=_lgbm_defaults,
        requires="lightgbm",
        extra="boost",
    ),
    Candidate(
        name="xgboost",
        summary="XGBoost gradient boosting (hist tree method)",
        suggest=_xgb_suggest,
        make=_xgb_make,
        defaults=_xgb_defaults,
        requires="xgboost",
        extra="boost",
        check_target=_labels_are_codes,
    ),
):
    register_candidate(_candidate)
