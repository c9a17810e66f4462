"""A check for the public names a package re-exports."""

from __future__ import annotations

import importlib
from types import ModuleType


def check_export(package: ModuleType, name: str) -> None:
    """``package.name`` resolves to what its defining module calls ``name``.

    A class or function must be opsloop's own, named ``name``, and be the very object its
    module (``__module__``) holds under that name; a subpackage must be the subpackage of that
    name; anything else is a constant, named in capitals.
    """
    obj = getattr(package, name)
    if isinstance(obj, ModuleType):
        assert obj.__name__ == f"{package.__name__}.{name}", (name, obj.__name__)
    elif isinstance(obj, type) or callable(obj):
        module = getattr(obj, "__module__", "")
        assert module.startswith("opsloop."), (name, module)
        assert obj.__name__ == name, (name, obj.__name__)
        assert getattr(importlib.import_module(module), name) is obj, (name, module)
    else:
        assert name.isupper(), (name, type(obj))
        assert isinstance(obj, str | int | float | tuple | frozenset), (name, type(obj))
