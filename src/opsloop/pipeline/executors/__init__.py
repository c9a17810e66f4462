"""Executors run pipeline steps; three are built in:

* ``local`` (:class:`~opsloop.pipeline.executors.local.LocalExecutor`, the default) — a fresh
  worker process per step attempt, several at once: a crash fails only its step, and each
  step's CPU time and peak memory are its own;
* ``inline`` (:class:`~opsloop.pipeline.executors.inline.InlineExecutor`) — every step in the
  calling process, one after another, for debugging and fast tests;
* ``ray`` (:class:`~opsloop.pipeline.executors.ray.RayExecutor`, the ``ray`` extra) — each
  step a Ray task on a cluster, with the CPUs and memory the step declares.

Pick one by name with :func:`get_executor`; add a backend with :func:`register_executor`, or
from another distribution with an entry point in the group ``opsloop.executors`` that names
a factory called as ``factory(**options)`` (usually the :class:`Executor` subclass itself).
Tasks and results are plain picklable data (see :mod:`~opsloop.pipeline.executors.base`), so
such a backend may run steps on other machines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from opsloop.errors import ConfigError, MissingDependencyError, PluginError
from opsloop.pipeline.executors.base import DEFAULT_LOG_LIMIT, Executor, StepResult, StepTask
from opsloop.plugins import Registry

__all__ = [
    "DEFAULT_LOG_LIMIT",
    "EXECUTORS",
    "Executor",
    "ExecutorFactory",
    "StepResult",
    "StepTask",
    "available_executors",
    "get_executor",
    "register_executor",
]

ExecutorFactory = Callable[..., Executor]
"""Builds an executor: called as ``factory(**options)``."""


def _factory(name: str, obj: Any) -> ExecutorFactory:
    if isinstance(obj, type) and not issubclass(obj, Executor):
        raise TypeError(f"{obj.__module__}.{obj.__qualname__} is not an Executor subclass")
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable")
    return cast("ExecutorFactory", obj)


EXECUTORS: Registry[ExecutorFactory] = Registry("executor", "opsloop.executors", check=_factory)
"""Executor factories by name."""

# Import references: a backend's module is imported only when the backend is used.
EXECUTORS.register("local", "opsloop.pipeline.executors.local:LocalExecutor")
EXECUTORS.register("inline", "opsloop.pipeline.executors.inline:InlineExecutor")
EXECUTORS.register("ray", "opsloop.pipeline.executors.ray:RayExecutor")


def register_executor(name: str, factory: ExecutorFactory | str, *, replace: bool = False) -> None:
    """Make ``factory(**options)`` the executor called ``name``.

    Args:
        name: The executor's name.
        factory: An :class:`Executor` subclass or a function returning one, or an import
            reference ``"package.module:attr"`` to one.
        replace: Replace an executor already registered under ``name``.

    Raises:
        ConfigError: The name is taken and ``replace`` is false.
    """
    EXECUTORS.register(name, factory, replace=replace)


def available_executors() -> list[str]:
    """Names of the registered executors (entry points included), sorted."""
    return EXECUTORS.names()


def get_executor(name: str, **options: Any) -> Executor:
    """A new executor by name, e.g. ``get_executor("local", max_workers=4)``.

    Raises:
        ConfigError: No executor has that name, or its factory returned something else.
        PluginError: The executor's plugin cannot be imported.
        MissingDependencyError: The executor needs an extra that is not installed.
    """
    try:
        factory = EXECUTORS.get(name)
    except PluginError as exc:
        if isinstance(exc.__cause__, MissingDependencyError):
            raise exc.__cause__ from None
        raise
    executor = factory(**options)
    if not isinstance(executor, Executor):
        raise ConfigError(
            f"executor {name!r}: its factory returned a {type(executor).__name__}, not an Executor"
        )
    return executor
