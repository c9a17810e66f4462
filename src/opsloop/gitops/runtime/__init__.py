"""Runtimes that run deployments, picked by name: ``local`` (model server processes on this
machine) and ``kubernetes`` (manifests rendered into a folder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsloop.errors import ConfigError
from opsloop.gitops.runtime.base import Runtime

if TYPE_CHECKING:
    from opsloop.context import Project

__all__ = ["Runtime", "RuntimeFactory", "available_runtimes", "open_runtime", "register_runtime"]

RuntimeFactory = Callable[..., Runtime]
"""Builds a runtime: called as ``factory(project, **options)``."""

_FACTORIES: dict[str, RuntimeFactory] = {}


def register_runtime(name: str, factory: RuntimeFactory) -> None:
    """Make a runtime available under ``name`` (a later registration replaces an earlier one)."""
    _FACTORIES[name] = factory


def available_runtimes() -> list[str]:
    """Names of the registered runtimes."""
    return sorted(_FACTORIES)


def open_runtime(name: str, project: Project, **options: Any) -> Runtime:
    """The runtime registered under ``name``, for ``project``.

    Raises:
        ConfigError: No runtime has that name.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown runtime {name!r}; available: {', '.join(available_runtimes())}")
    return factory(project, **options)


def _local(project: Project, **options: Any) -> Runtime:
    from opsloop.gitops.runtime.local import LocalRuntime

    return LocalRuntime(project.dir, **options)


def _kubernetes(project: Project, **options: Any) -> Runtime:
    from opsloop.gitops.runtime.kubernetes import KubernetesRuntime

    options.setdefault("out_dir", project.state_dir / "runtime" / "kubernetes")
    return KubernetesRuntime(**options)


register_runtime("local", _local)
register_runtime("kubernetes", _kubernetes)
