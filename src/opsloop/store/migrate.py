"""Bring a store's schema up to date with Alembic, safely across processes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from opsloop.errors import MigrationError
from opsloop.redact import redact

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from opsloop.store.base import Backend

VERSION_TABLE = "opsloop_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at opsloop's migrations (and ``connection`` if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of opsloop."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the store's schema is at, or None for an empty store."""
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def upgrade(engine: Engine, backend: Backend, url: str) -> None:
    """Migrate the store to the head revision unless it is there already.

    The check is made once without the lock (the common case: nothing to do) and again under
    the backend's lock, so two processes opening a new store at once migrate it exactly once.
    """
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return
    with backend.migration_lock(engine, url) as conn:
        current = current_revision(conn)
        conn.commit()
        if current == head:
            return
        try:
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        except Exception as exc:
            conn.rollback()
            reason = exc.orig if isinstance(exc, DBAPIError) else exc
            # One line, and nothing of the URL a driver may quote.
            reason_text = " ".join(redact(str(reason), url).split())
            raise MigrationError(
                f"could not migrate the metadata store from {current or 'empty'} to {head}: "
                f"{reason_text}"
            ) from exc
