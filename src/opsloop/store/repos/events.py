"""The audit trail: an append-only log of events, chained by their hashes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from opsloop.errors import AuditChainError, SecurityError
from opsloop.store import models as m
from opsloop.store.audit import GENESIS, entry_hash
from opsloop.store.types import AuditVerification, EventInfo

if TYPE_CHECKING:
    import builtins
    from datetime import datetime

    from sqlalchemy.orm import Session

    from opsloop.store.db import Database

__all__ = ["EventRepository"]


def _own_hash(e: m.Event) -> str:
    return entry_hash(
        seq=e.seq,
        prev_hash=e.prev_hash,
        time=e.time,
        actor=e.actor,
        source=e.source,
        kind=e.kind,
        object_type=e.object_type,
        object_id=e.object_id,
        details=e.details,
    )


def _anchors(expect: list[tuple[int, str]]) -> dict[int, str]:
    anchors: dict[int, str] = {}
    for position, digest in expect:
        text = str(digest).lower()
        if not isinstance(position, int) or position < 1:
            raise SecurityError(f"audit anchor position {position!r}: a position is 1 or more")
        if not 12 <= len(text) <= 64 or any(c not in "0123456789abcdef" for c in text):
            raise SecurityError(
                f"audit anchor {position}:{digest}: the hash must be 12 to 64 hex digits "
                "of a SHA-256 head, as 'opsloop audit verify' prints it"
            )
        anchors[position] = text
    return anchors


class _ChainBrokenError(Exception):
    """Where the walk over the chain stopped (internal)."""

    def __init__(self, reason: str, entry: m.Event | None, position: int | None, message: str):
        super().__init__(message)
        self.reason = reason
        self.entry_id = entry.id if entry is not None else None
        self.position = position
        self.message = message


class _Walk:
    """One pass over the chain in position order, checking each entry against the last."""

    def __init__(
        self, s: Session, head: m.AuditHead, anchors: dict[int, str] | None = None
    ) -> None:
        self.s = s
        self.head = head
        self.anchors = anchors or {}
        self.prev: m.Event | None = None
        self.before_prev = GENESIS  # the hash of the entry before ``prev``
        self.before_prev_id = 0  # and its id
        self.entries = 0

    def step(self, e: m.Event) -> None:
        expected = self.entries + 1
        if e.seq > self.head.seq:
            raise _ChainBrokenError(
                "inserted",
                e,
                e.seq,
                f"entry {e.id} (position {e.seq}) is past the head of the chain "
                f"(position {self.head.seq}): it was added behind the store's back",
            )
        if e.seq < expected:
            raise _ChainBrokenError(
                "inserted", e, e.seq, f"entry {e.id} repeats position {e.seq} of the chain"
            )
        if e.seq > expected:
            gap = f"{expected}" if e.seq == expected + 1 else f"{expected} to {e.seq - 1}"
            raise _ChainBrokenError(
                "missing",
                e,
                expected,
                f"the entries at position {gap}, before entry {e.id}, are missing (deleted)",
            )
        prev = self.prev
        if e.prev_hash != (prev.hash if prev is not None else GENESIS):
            self._broken_link(e)
        if prev is not None and e.id <= prev.id:
            # Name the one out of place: ``prev`` when ``e`` still follows the entry before it.
            moved = prev if e.id > self.before_prev_id else e
            raise _ChainBrokenError(
                "reordered",
                moved,
                moved.seq,
                f"entry {e.id} (position {e.seq}) was written before entry {prev.id} "
                f"(position {prev.seq}) but comes after it in the chain: entry {moved.id} "
                "was moved",
            )
        if _own_hash(e) != e.hash:
            raise _ChainBrokenError(
                "edited",
                e,
                e.seq,
                f"entry {e.id} (position {e.seq}) does not match its hash: "
                "it was changed after it was written",
            )
        recorded = self.anchors.get(e.seq)
        if recorded is not None and not e.hash.startswith(recorded):
            raise _ChainBrokenError(
                "rewritten",
                e,
                e.seq,
                f"entry {e.id} (position {e.seq}) hashes to {e.hash[:16]}, not to the recorded "
                f"{recorded[:16]}: the chain was rewritten up to there, every hash recomputed",
            )
        self.before_prev = prev.hash if prev is not None else GENESIS
        self.before_prev_id = prev.id if prev is not None else 0
        self.prev = e
        self.entries += 1

    def _broken_link(self, e: m.Event) -> None:
        prev = self.prev
        if prev is not None and e.prev_hash == self.before_prev:
            raise _ChainBrokenError(
                "inserted",
                prev,
                prev.seq,
                f"entry {prev.id} (position {prev.seq}) was inserted: entry {e.id} after it "
                "links to the entry before it",
            )
        other = self.s.execute(
            select(m.Event.id, m.Event.seq).where(m.Event.hash == e.prev_hash, m.Event.id != e.id)
        ).first()
        if other is not None:
            raise _ChainBrokenError(
                "reordered",
                e,
                e.seq,
                f"entry {e.id} (position {e.seq}) follows entry {other.id} (position "
                f"{other.seq}), not the entry before it",
            )
        if _own_hash(e) == e.hash:
            before = f"entry {prev.id}" if prev is not None else "the start of the chain"
            raise _ChainBrokenError(
                "inserted",
                e,
                e.seq,
                f"entry {e.id} (position {e.seq}) does not link to {before}: it was forged, "
                "or the entry before it was rewritten",
            )
        raise _ChainBrokenError(
            "edited",
            e,
            e.seq,
            f"entry {e.id} (position {e.seq}) does not match its hash nor link to the entry "
            "before it: it was changed after it was written",
        )

    def end(self) -> None:
        last = self.prev
        seq, digest = (last.seq, last.hash) if last is not None else (0, GENESIS)
        beyond = [position for position in self.anchors if position > self.head.seq]
        if beyond:
            raise _ChainBrokenError(
                "rewritten",
                last,
                min(beyond),
                f"the chain ends at position {self.head.seq}, before the recorded position "
                f"{min(beyond)}: entries were removed and the chain rewritten",
            )
        if seq < self.head.seq:
            n = self.head.seq - seq
            after = f"after entry {last.id}" if last is not None else "of the chain"
            raise _ChainBrokenError(
                "truncated",
                last,
                seq + 1,
                f"the newest {n} entr{'y' if n == 1 else 'ies'} {after} "
                f"{'is' if n == 1 else 'are'} missing: the head of the chain is at position "
                f"{self.head.seq}",
            )
        if digest != self.head.hash:
            raise _ChainBrokenError(
                "edited",
                last,
                seq,
                f"the newest entry{f' {last.id}' if last is not None else ''} does not match "
                "the head of the chain: it was rewritten",
            )


class EventRepository:
    """The audit trail: an append-only log of events, chained by their hashes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def emit(
        self,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an event that no other store call records."""
        with self.db.write() as s:
            self.db.event(s, kind, object_type, object_id, details)

    def list(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        kind: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        after_id: int | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> builtins.list[EventInfo]:
        """Events, oldest first, filtered by object, kind (prefix with ``*``), actor or time.

        ``after_id`` pages on: the events after the last one of the previous page.
        ``newest_first`` gives the newest ``limit`` events, newest first.
        """
        order = m.Event.id.desc() if newest_first else m.Event.id
        q = select(m.Event).order_by(order).limit(limit)
        if object_type is not None:
            q = q.where(m.Event.object_type == object_type)
        if object_id is not None:
            q = q.where(m.Event.object_id == object_id)
        if kind is not None:
            if kind.endswith("*"):
                q = q.where(m.Event.kind.startswith(kind[:-1], autoescape=True))
            else:
                q = q.where(m.Event.kind == kind)
        if actor is not None:
            q = q.where(m.Event.actor == actor)
        if since is not None:
            q = q.where(m.Event.time >= since)
        if after_id is not None:
            q = q.where(m.Event.id > after_id)
        with self.db.read() as s:
            return [EventInfo.model_validate(e) for e in s.scalars(q)]

    def verify(
        self,
        *,
        batch: int = 1000,
        expect: builtins.list[tuple[int, str]] | None = None,
    ) -> AuditVerification:
        """Walk the whole audit chain and say whether it is intact, or where and how it broke.

        Every entry must hash to its stored hash, link to the one before it and sit at the
        next position, in the order it was written, and the last must be the chain's head:
        an entry edited, deleted, inserted or moved in the database breaks one of these.
        The walk reads one consistent snapshot, so concurrent appends do not disturb it.

        The chain alone cannot tell a consistent rewrite (every entry changed and every hash
        recomputed by someone with write access to the database) from the original. ``expect``
        anchors it: ``(position, sha256)`` pairs, heads recorded earlier somewhere the
        database's writers cannot change (a ticket, a log shipped off the machine); each entry
        at such a position must still have that hash (or a prefix of it, of 12 or more hex
        digits).

        Raises:
            SecurityError: An anchor is not a position and a hash prefix.
        """
        anchors = _anchors(expect or [])
        with self.db.snapshot() as s:
            head = s.get(m.AuditHead, 1)
            if head is None:
                return AuditVerification(
                    entries=0,
                    head_seq=0,
                    head_hash=None,
                    reason="truncated",
                    message="the head record of the audit chain is missing (deleted)",
                )
            walk = _Walk(s, head, anchors)
            try:
                self._walk(s, walk, batch)
                walk.end()
            except _ChainBrokenError as broken:
                return AuditVerification(
                    entries=walk.entries,
                    head_seq=head.seq,
                    head_hash=head.hash,
                    reason=broken.reason,
                    entry_id=broken.entry_id,
                    position=broken.position,
                    message=broken.message,
                )
            return AuditVerification(
                entries=walk.entries,
                head_seq=head.seq,
                head_hash=head.hash,
                message=f"audit trail intact: {walk.entries} entries",
            )

    @staticmethod
    def _walk(s: Session, walk: _Walk, batch: int) -> None:
        last: tuple[int, int] | None = None
        while True:
            q = select(m.Event).order_by(m.Event.seq, m.Event.id).limit(batch)
            if last is not None:
                q = q.where(
                    or_(m.Event.seq > last[0], and_(m.Event.seq == last[0], m.Event.id > last[1]))
                )
            rows = s.scalars(q).all()
            for e in rows:
                walk.step(e)
            if len(rows) < batch:
                return
            last = (rows[-1].seq, rows[-1].id)
            # Detached rows keep what was loaded; the session need not hold a whole chain.
            s.expunge_all()

    def check(self, *, expect: builtins.list[tuple[int, str]] | None = None) -> AuditVerification:
        """:meth:`verify`, raising when the chain is broken.

        Raises:
            AuditChainError: An entry was edited, deleted, inserted or reordered, or does not
                match an ``expect`` anchor; the message names the entry and how.
        """
        result = self.verify(expect=expect)
        if not result.intact:
            raise AuditChainError(
                f"audit trail broken ({result.reason}): {result.message}",
                hint="the store's events were changed outside opsloop; restore the database "
                "from a backup and look at who had write access to it",
            )
        return result
