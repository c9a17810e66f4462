"""The database: the engine, transactions and the events table every change writes to.

One :class:`Database` is shared by the per-domain repositories (:mod:`opsloop.store.repos`);
it is the only place that opens sessions. A write transaction records its audit events in the
same transaction as the change, so the events table never tells a story the other tables do
not.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from opsloop.errors import StoreError
from opsloop.redact import redact, redact_url, redact_value
from opsloop.store import models as m
from opsloop.store.acting import current_actor
from opsloop.store.migrate import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine

    from opsloop.store.base import Backend

__all__ = ["Database"]


class Database:
    """An engine over one store backend, with read and write transactions.

    Args:
        engine: A SQLAlchemy engine from the backend.
        backend: The backend that made the engine.
        url: The store URL (shown masked in messages).
        actor: Who is acting: recorded on every event.
        migrate: Bring the schema up to date on open.
    """

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        url: str,
        *,
        actor: str = "unknown",
        migrate: bool = True,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.url = url
        self.actor = actor
        if migrate:
            try:
                upgrade(engine, backend, url)
            except DBAPIError as exc:
                raise StoreError(
                    f"cannot open the metadata store at {self.safe_url}: {self.reason(exc)}"
                ) from exc

    @property
    def safe_url(self) -> str:
        """The URL with its password and credential query values masked."""
        return redact_url(self.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    def reason(self, exc: DBAPIError) -> str:
        """The driver's own words, on one line, without anything of the URL it may quote."""
        return " ".join(redact(str(exc.orig), self.url).split())

    def failed(self, exc: DBAPIError) -> StoreError:
        """The StoreError for a failure of the database itself."""
        return StoreError(f"metadata store {self.safe_url}: {self.reason(exc)}")

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
            except OperationalError as exc:
                raise self.failed(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work commits in one write transaction (or not at all).

        SQLite takes its write lock at the start (``BEGIN IMMEDIATE``), so two writers never
        both read and then fail to upgrade their lock.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
                    yield s
                    s.flush()
        except OperationalError as exc:
            raise self.failed(exc) from exc

    def event(
        self,
        s: Session,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add an audit event inside a write session, so it commits with the change."""
        acting = current_actor()
        s.add(
            m.Event(
                actor=acting.name if acting is not None else self.actor,
                kind=kind,
                object_type=object_type,
                object_id=object_id,
                # A secret quoted in a reason (an error's text) is masked before it is stored.
                details=redact_value(details or {}),
            )
        )
