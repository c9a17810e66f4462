"""Executors run pipeline steps: ``local`` (worker processes) and ``inline`` (in-process).

Pick one by name with :func:`get_executor`; add a backend with :func:`register_executor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsloop.errors import ConfigError
from opsloop.pipeline.executors.base import DEFAULT_LOG_LIMIT, Executor, StepResult, StepTask

__all__ = [
    "DEFAULT_LOG_LIMIT",
    "Executor",
    "StepResult",
    "StepTask",
    "available_executors",
    "get_executor",
    "register_executor",
]

ExecutorFactory = Callable[..., Executor]


def _local(**options: Any) -> Executor:
    from opsloop.pipeline.executors.local import LocalExecutor

    return LocalExecutor(**options)


def _inline(**options: Any) -> Executor:
    from opsloop.pipeline.executors.inline import InlineExecutor

    return InlineExecutor(**options)


# Backends are imported when first asked for, so that one with heavy dependencies (Ray)
# costs nothing until it is used.
_FACTORIES: dict[str, ExecutorFactory] = {"local": _local, "inline": _inline}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make ``factory(**options)`` the executor called ``name``."""
    _FACTORIES[name] = factory


def available_executors() -> list[str]:
    """Names of the registered executors."""
    return sorted(_FACTORIES)


def get_executor(name: str, **options: Any) -> Executor:
    """A new executor by name, e.g. ``get_executor("local", max_workers=4)``.

    Raises:
        ConfigError: No executor has that name.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown executor {name!r}: choose one of {', '.join(available_executors())}"
        ) from None
    return factory(**options)
