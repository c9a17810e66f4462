"""The backend contract of the metadata store.

The store itself is one SQLAlchemy facade (:class:`opsloop.store.facade.Store`); what differs
between backends is how an engine is made and how two processes agree on who migrates a new
store. Each backend module (``sqlite``, ``postgres``) provides one :class:`Backend`, registered
in :data:`STORE_BACKENDS` under its URL scheme; another distribution adds one with an entry
point in the group ``opsloop.store_backends`` naming its class.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson

from opsloop.plugins import Registry

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import Connection, Engine


class Backend(Protocol):
    """How one database family is opened and migrated safely."""

    name: str

    def create_engine(self, url: str) -> Engine:
        """Create the engine for ``url`` with the backend's pragmas and pool settings."""
        ...

    def migration_lock(self, engine: Engine, url: str) -> AbstractContextManager[Connection]:
        """Hold a lock that only one process at a time can take while it migrates.

        Yields the connection to migrate on.
        """
        ...


def _backend(name: str, obj: Any) -> Backend:
    backend = obj() if isinstance(obj, type) else obj
    missing = [a for a in ("name", "create_engine", "migration_lock") if not hasattr(backend, a)]
    if missing:
        raise TypeError(f"{backend!r} has no {', '.join(missing)} (see opsloop.store.base.Backend)")
    if backend.name != name:
        raise ValueError(f"its name is {backend.name!r}, not the URL scheme {name!r}")
    return cast("Backend", backend)


STORE_BACKENDS: Registry[Backend] = Registry(
    "store backend", "opsloop.store_backends", check=_backend
)
"""Store backends by URL scheme (the part before ``+`` and ``:``)."""

STORE_BACKENDS.register("sqlite", "opsloop.store.sqlite:SQLiteBackend")
STORE_BACKENDS.register("postgresql", "opsloop.store.postgres:PostgresBackend")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dump_json(value: Any) -> str:
    """Encode a JSON column. ``NaN`` and infinities become ``null`` on every backend:
    PostgreSQL refuses them in JSON, and one store must hold the same data on both."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def load_json(text: str | bytes) -> Any:
    """Decode a JSON column: orjson, several times faster than the standard library where a
    monitoring window reads tens of thousands of rows; the standard library for what only it
    reads (``NaN`` and ``Infinity`` in rows written before :func:`dump_json` mapped them to
    ``null``, and integers beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
