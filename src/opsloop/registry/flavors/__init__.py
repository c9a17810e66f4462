"""Model flavors: the formats a packaged model can be stored in."""

from __future__ import annotations

from typing import Any

from opsloop.errors import ModelLoadError, RegistryError
from opsloop.registry.flavors.base import Flavor
from opsloop.registry.flavors.sklearn import SklearnFlavor

__all__ = ["FLAVORS", "Flavor", "SklearnFlavor", "flavor_for", "get_flavor"]

#: Flavors by the name recorded in ``MLmodel``.
FLAVORS: dict[str, Flavor] = {"sklearn": SklearnFlavor()}


def get_flavor(name: str) -> Flavor:
    """The flavor recorded as ``name``; ModelLoadError if opsloop does not know it."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown model flavor {name!r}; known flavors: {', '.join(sorted(FLAVORS))}",
            hint="the model may have been packaged by a newer opsloop; upgrade opsloop",
        ) from None


def flavor_for(model: Any) -> Flavor:
    """The flavor that can package ``model``; RegistryError if none can."""
    for flavor in FLAVORS.values():
        if flavor.accepts(model):
            return flavor
    cls = type(model)
    raise RegistryError(
        f"cannot package a {cls.__module__}.{cls.__qualname__}: no flavor accepts it",
        hint="wrap the model in a scikit-learn estimator (sklearn.base.BaseEstimator)",
    )
