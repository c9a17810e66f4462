"""SQLite backend: WAL mode, a busy timeout, and a file lock around migrations."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from opsloop.store.base import dump_json, load_json

if TYPE_CHECKING:
    from collections.abc import Iterator


def _use_wal(cur: Any, patience: float = 60.0) -> None:
    """Put the database file in WAL mode, waiting for other processes that hold it.

    Switching the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once, without its busy handler, while another process opens or migrates the
    same new file. The switch is made once per file, so a file already in WAL mode is left
    alone; otherwise the switch is retried until ``patience`` seconds have passed.
    """
    deadline = time.monotonic() + patience
    delay = 0.01
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class SQLiteBackend:
    """Local store in one file; many processes may read and write it at once."""

    name = "sqlite"

    def create_engine(self, url: str) -> Engine:
        # The file's folder is not made here: opening a store must not create folders by
        # accident (open_store checks it, and makes only the project's own state folder).
        engine = create_engine(
            url,
            connect_args={"timeout": 60},
            json_serializer=dump_json,
            json_deserializer=load_json,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, start transactions: the driver's implicit BEGIN
            # is deferred, and a deferred transaction that later writes can fail with
            # "database is locked" instead of waiting for the lock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            _use_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front so concurrent writers queue on the busy
            # timeout rather than deadlock on a lock upgrade.
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextmanager
    def migration_lock(self, engine: Engine, url: str) -> Iterator[Connection]:
        database = make_url(url).database
        if not database or database == ":memory:":
            with engine.connect() as conn:
                yield conn
            return
        with FileLock(f"{database}.migrate.lock", timeout=120), engine.connect() as conn:
            yield conn
