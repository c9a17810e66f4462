"""Model flavors: the formats a packaged model can be stored in.

Another distribution adds one with an entry point in the group ``opsloop.flavors`` (the
entry point's name is the flavor's ``name``) naming its class or instance.
"""

from __future__ import annotations

from typing import Any

from opsloop.errors import ModelLoadError, PluginError, RegistryError
from opsloop.plugins import Registry
from opsloop.registry.flavors.base import Flavor
from opsloop.registry.flavors.sklearn import SklearnFlavor

__all__ = ["FLAVORS", "Flavor", "SklearnFlavor", "flavor_for", "get_flavor"]


def _flavor(name: str, obj: Any) -> Flavor:
    flavor = obj() if isinstance(obj, type) else obj
    if not isinstance(flavor, Flavor):
        raise TypeError(f"{flavor!r} does not follow the Flavor protocol")
    if flavor.name != name:
        raise ValueError(f"its name is {flavor.name!r}, not {name!r}")
    return flavor


FLAVORS: Registry[Flavor] = Registry(
    "model flavor",
    "opsloop.flavors",
    error=ModelLoadError,
    hint="the model may have been packaged by a newer opsloop; upgrade opsloop",
    check=_flavor,
)
"""Flavors by the name recorded in ``MLmodel``."""

FLAVORS.register("sklearn", SklearnFlavor())


def get_flavor(name: str) -> Flavor:
    """The flavor recorded as ``name``.

    Raises:
        ModelLoadError: opsloop knows no flavor of that name.
        PluginError: The flavor's plugin cannot be imported.
    """
    return FLAVORS.get(name)


def flavor_for(model: Any) -> Flavor:
    """The first flavor (built-in first, then those of entry points) that accepts ``model``.

    Raises:
        RegistryError: No flavor accepts it; a flavor whose plugin cannot be imported is
            named in the message.
    """
    broken: list[str] = []
    for name in FLAVORS:
        try:
            flavor = FLAVORS.get(name)
        except PluginError:
            broken.append(name)
            continue
        if flavor.accepts(model):
            return flavor
    cls = type(model)
    also = f" (flavors that cannot be imported: {', '.join(broken)})" if broken else ""
    raise RegistryError(
        f"cannot package a {cls.__module__}.{cls.__qualname__}: no flavor accepts it{also}",
        hint="wrap the model in a scikit-learn estimator (sklearn.base.BaseEstimator)",
    )
