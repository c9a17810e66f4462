"""Runtimes that run deployments, picked by name: ``local`` (model server processes on this
machine) and ``kubernetes`` (manifests rendered into a folder).

Another distribution adds one with an entry point in the group ``opsloop.runtimes`` that
names a factory called as ``factory(project, **options)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from opsloop.errors import ConfigError
from opsloop.gitops.runtime.base import Runtime
from opsloop.plugins import Registry

if TYPE_CHECKING:
    from opsloop.context import Project

__all__ = [
    "RUNTIMES",
    "Runtime",
    "RuntimeFactory",
    "available_runtimes",
    "open_runtime",
    "register_runtime",
]

RuntimeFactory = Callable[..., Runtime]
"""Builds a runtime: called as ``factory(project, **options)``."""


def _factory(name: str, obj: Any) -> RuntimeFactory:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable")
    return cast("RuntimeFactory", obj)


RUNTIMES: Registry[RuntimeFactory] = Registry("runtime", "opsloop.runtimes", check=_factory)
"""Runtime factories by name."""


def register_runtime(name: str, factory: RuntimeFactory | str, *, replace: bool = False) -> None:
    """Make a runtime available under ``name``.

    Args:
        name: The runtime's name.
        factory: Called as ``factory(project, **options)``; or an import reference
            ``"package.module:attr"`` to such a callable.
        replace: Replace a runtime already registered under ``name``.

    Raises:
        ConfigError: The name is taken and ``replace`` is false.
    """
    RUNTIMES.register(name, factory, replace=replace)


def available_runtimes() -> list[str]:
    """Names of the registered runtimes (entry points included), sorted."""
    return RUNTIMES.names()


def open_runtime(name: str, project: Project, **options: Any) -> Runtime:
    """The runtime registered under ``name``, for ``project``.

    Raises:
        ConfigError: No runtime has that name, or its factory returned something else.
        PluginError: The runtime's plugin cannot be imported.
    """
    runtime = RUNTIMES.get(name)(project, **options)
    if not isinstance(runtime, Runtime):
        raise ConfigError(
            f"runtime {name!r}: its factory returned a {type(runtime).__name__}, not a Runtime"
        )
    return runtime


def _local(project: Project, **options: Any) -> Runtime:
    # Lazy imports here and below (noqa: PLC0415) of opsloop.gitops: each loads only where it is
    # used, so importing this module stays light.
    from opsloop.gitops.runtime.local import LocalRuntime  # noqa: PLC0415

    return LocalRuntime(project.dir, **options)


def _kubernetes(project: Project, **options: Any) -> Runtime:
    from opsloop.gitops.runtime.kubernetes import KubernetesRuntime  # noqa: PLC0415

    options.setdefault("out_dir", project.state_dir / "runtime" / "kubernetes")
    return KubernetesRuntime(**options)


register_runtime("local", _local)
register_runtime("kubernetes", _kubernetes)
