"""Estimator classes outside scikit-learn, so skops lists them as untrusted types."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin


class Doubler(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Multiply every input by two."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


class Fragile(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Saves fine, but cannot be rebuilt from its stored state."""

    def fit(self, X: Any, y: Any = None) -> Fragile:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return X

    def __setstate__(self, state: dict[str, Any]) -> None:
        raise RuntimeError("this estimator cannot be loaded back")
