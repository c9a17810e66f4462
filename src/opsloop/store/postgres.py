"""PostgreSQL backend: a pooled engine and an advisory lock around migrations."""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, text

from opsloop.errors import MissingDependencyError
from opsloop.store.base import dump_json, load_json

if TYPE_CHECKING:
    from collections.abc import Iterator

# Any constant works; it only has to be the same in every opsloop process.
_MIGRATION_LOCK_KEY = 0x6F70736C6F6F70


class PostgresBackend:
    """Team store on PostgreSQL (``postgresql+psycopg://``)."""

    name = "postgresql"

    def create_engine(self, url: str) -> Engine:
        if importlib.util.find_spec("psycopg") is None:
            raise MissingDependencyError("psycopg", "postgres")
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            json_serializer=dump_json,
            json_deserializer=load_json,
        )

    @contextmanager
    def migration_lock(self, engine: Engine, url: str) -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
