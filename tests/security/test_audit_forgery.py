"""Attacks on the audit trail by someone with write access to the database who knows how an
entry's hash is made: forged entries (with hashes recomputed), replayed entries, and breaks
that later appends would paper over."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from opsloop.store import open_store
from opsloop.store.audit import entry_hash
from tests.store.test_audit_chain import lift_triggers, rows, tamper, write_history

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opsloop.store import Store

_INSERT = (
    "INSERT INTO events (time, actor, kind, object_type, object_id, details, source, seq, "
    "prev_hash, hash) VALUES (:time, :actor, :kind, :object_type, :object_id, :details, "
    ":source, :seq, :prev_hash, :hash)"
)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="alice")
    write_history(s)
    yield s
    s.close()


def forged(seq: int, prev_hash: str, **fields: Any) -> dict[str, Any]:
    """An entry an attacker writes: an alias moved by someone who never moved it, with a
    hash made exactly as the store makes it."""
    entry = {
        "time": datetime.now(UTC).replace(microsecond=0),
        "actor": "alice",
        "kind": "alias.set",
        "object_type": "model",
        "object_id": "churn",
        "source": "10.0.0.1",
        **fields,
    }
    details = {"alias": "champion", "version": 1, "before": {"version": 2}}
    digest = entry_hash(seq=seq, prev_hash=prev_hash, details=details, **entry)
    return {
        **entry,
        "details": '{"alias": "champion", "version": 1, "before": {"version": 2}}',
        "seq": seq,
        "prev_hash": prev_hash,
        "hash": digest,
    }


def test_forged_entry_that_does_not_link_is_found_even_with_the_head_moved(
    store: Store,
) -> None:
    entry = forged(11, "e" * 64)
    tamper(
        store,
        (_INSERT, entry),
        ("UPDATE audit_head SET seq = 11, hash = :h", {"h": entry["hash"]}),
    )
    planted = rows(store)[-1]
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("inserted", planted["id"], 11)
    assert "does not link" in result.message


def test_forged_entry_that_links_but_is_past_the_head_is_found(store: Store) -> None:
    last = rows(store)[-1]
    tamper(store, (_INSERT, forged(11, last["hash"])))
    planted = rows(store)[-1]
    result = store.events.verify()
    assert (result.reason, result.entry_id) == ("inserted", planted["id"])
    assert "past the head" in result.message


def test_replayed_entry_is_found(store: Store) -> None:
    """A genuine entry copied to the end, as if the same alias move happened again."""
    old = rows(store)[4]
    with store.engine.connect() as conn:
        details = conn.execute(
            text("SELECT CAST(details AS TEXT) FROM events WHERE id = :id"), {"id": old["id"]}
        ).scalar_one()
    copy = {c: old[c] for c in ("time", "actor", "kind", "object_type", "object_id", "source")}
    copy.update(details=details, seq=11, prev_hash=old["prev_hash"], hash=old["hash"])
    tamper(
        store, (_INSERT, copy), ("UPDATE audit_head SET seq = 11, hash = :h", {"h": copy["hash"]})
    )
    result = store.events.verify()
    assert not result.intact
    assert result.entry_id == rows(store)[-1]["id"]


def test_later_appends_do_not_hide_a_break(store: Store) -> None:
    victim = rows(store)[2]
    tamper(store, ("UPDATE events SET object_id = 'other' WHERE id = :id", {"id": victim["id"]}))
    for i in range(5):
        store.events.emit("after.tamper", "run", "r", {"i": i})
    result = store.events.verify()
    assert (result.reason, result.entry_id) == ("edited", victim["id"])


def test_a_hash_overwritten_with_another_is_found(store: Store) -> None:
    entries = rows(store)
    tamper(
        store,
        (
            "UPDATE events SET hash = :h WHERE id = :id",
            {"h": entries[2]["hash"], "id": entries[6]["id"]},
        ),
    )
    result = store.events.verify()
    assert not result.intact and result.entry_id in (entries[6]["id"], entries[7]["id"])


def test_the_triggers_are_back_after_the_migration(store: Store) -> None:
    # The chain detects tampering; the triggers still make it take a deliberate step.
    with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE seq = 10"))
    with store.engine.begin() as conn:
        lift_triggers(conn)
        conn.execute(text("DELETE FROM events WHERE seq = 10"))
    assert store.events.verify().reason == "truncated"
