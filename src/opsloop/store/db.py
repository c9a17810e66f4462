"""The database: the engine, transactions and the events table every change writes to.

One :class:`Database` is shared by the per-domain repositories (:mod:`opsloop.store.repos`);
it is the only place that opens sessions. A write transaction records its audit events in the
same transaction as the change, so the events table never tells a story the other tables do
not.

The events are the audit trail, a hash chain (:mod:`opsloop.store.audit`). A write queues its
events and appends them to the chain as its last step before it commits, under the chain
head's lock: appends are serial (SQLite's write lock already makes them so; PostgreSQL locks
the head row), and the head is the last lock a write takes, so it cannot deadlock with
the rows the write changed first.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from opsloop.errors import AuditChainError, StoreError
from opsloop.redact import redact, redact_url, redact_value
from opsloop.store import models as m
from opsloop.store.acting import current_actor
from opsloop.store.audit import default_source, entry_hash, normalize_details
from opsloop.store.migrate import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine

    from opsloop.store.base import Backend

__all__ = ["Database"]

# Keys in Session.info: the events a write queued, and that a session is a write's.
_PENDING = "opsloop_pending_events"
_WRITE = "opsloop_write"


class Database:
    """An engine over one store backend, with read and write transactions.

    Args:
        engine: A SQLAlchemy engine from the backend.
        backend: The backend that made the engine.
        url: The store URL (shown masked in messages).
        actor: Who is acting: recorded on every event.
        migrate: Bring the schema up to date on open.
        source: Where this process's writes come from, recorded on every event that no
            :func:`~opsloop.store.acting.acting` block names a source for (default
            ``local@HOST``).
    """

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        url: str,
        *,
        actor: str = "unknown",
        migrate: bool = True,
        source: str | None = None,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.url = url
        self.actor = actor
        self.source = source or default_source()
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
    def snapshot(self) -> Iterator[Session]:
        """A read-only session whose reads all see one consistent state of the database.

        SQLite's read transaction already keeps one snapshot; PostgreSQL's default isolation
        takes a new one per statement, so this asks for ``REPEATABLE READ``.
        """
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
                    yield s
        except OperationalError as exc:
            raise self.failed(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work commits in one write transaction (or not at all).

        SQLite takes its write lock at the start (``BEGIN IMMEDIATE``), so two writers never
        both read and then fail to upgrade their lock. The events the work recorded are
        appended to the audit chain last, just before the commit.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
                    s.info[_WRITE] = True
                    yield s
                    s.flush()
                    self._append(s)
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
        """Add an audit event inside a write session, so it commits with the change.

        The event records the acting caller and where the call came from
        (:func:`~opsloop.store.acting.current_actor`), else the store's own actor and source.

        Raises:
            StoreError: ``s`` is not a session of :meth:`write`.
            TypeError: ``details`` cannot be stored as JSON.
        """
        if not s.info.get(_WRITE):
            raise StoreError("an audit event can only be recorded inside Database.write()")
        acting = current_actor()
        s.info.setdefault(_PENDING, []).append(
            {
                "actor": acting.name if acting is not None else self.actor,
                "source": acting.source if acting is not None and acting.source else self.source,
                "kind": kind,
                "object_type": object_type,
                "object_id": object_id,
                # A secret quoted in a reason (an error's text) is masked before it is stored;
                # the details are hashed as the JSON column will give them back.
                "details": normalize_details(redact_value(details or {})),
            }
        )

    def _append(self, s: Session) -> None:
        """Append the events queued in ``s`` to the chain, holding the head's lock."""
        pending: list[dict[str, Any]] = s.info.pop(_PENDING, [])
        if not pending:
            return
        head = s.scalar(select(m.AuditHead).where(m.AuditHead.id == 1).with_for_update())
        if head is None:
            raise AuditChainError(
                "the audit trail's head record is missing: the events table was tampered with",
                hint="see 'opsloop audit verify'",
            )
        seq, prev = head.seq, head.hash
        now = m.utcnow()
        rows = []
        for entry in pending:
            seq += 1
            digest = entry_hash(seq=seq, prev_hash=prev, time=now, **entry)
            rows.append({"seq": seq, "prev_hash": prev, "hash": digest, "time": now, **entry})
            prev = digest
        s.flush()
        # One statement for all of them (a storm of alerts writes thousands), on the table
        # itself: the ORM's bulk insert would only convert every row again first.
        s.execute(insert(m.Base.metadata.tables[m.Event.__tablename__]), rows)
        head.seq, head.hash = seq, prev
        s.flush()
