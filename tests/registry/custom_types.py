"""An estimator class outside scikit-learn, so skops lists it as an untrusted type."""

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
