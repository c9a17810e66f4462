"""Who is acting, and from where, for the audit events a write records.

A store is opened with a default actor (the OS user, or the one settings name). A process that
acts for several callers, as the control-plane server does for each request, names the caller
for the duration of the work with :func:`acting`; every event written meanwhile in this thread
or task records that caller and where the call came from.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Actor", "acting", "current_actor"]


@dataclass(frozen=True)
class Actor:
    """The caller a write is recorded for.

    Args:
        name: The identity (a user, a service account, or the OS user in local mode).
        source: Where the call came from: a client address, ``cli``, ``loop`` …; None when
            not known.
    """

    name: str
    source: str | None = None


_ACTOR: ContextVar[Actor | None] = ContextVar("opsloop_actor", default=None)


def current_actor() -> Actor | None:
    """The caller named by the innermost :func:`acting` block, or None outside any."""
    return _ACTOR.get()


@contextmanager
def acting(name: str, source: str | None = None) -> Iterator[Actor]:
    """Record every store write inside the block as done by ``name`` from ``source``."""
    actor = Actor(name, source)
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)
