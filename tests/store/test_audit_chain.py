"""The audit trail's hash chain on every backend: written through real store calls, then
tampered with in the database directly (as someone with write access to it would), and
verification names the entry and how the chain broke."""

from __future__ import annotations

import itertools
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from opsloop.errors import AuditChainError, SecurityError, StoreError
from opsloop.store import open_store
from opsloop.store.acting import acting
from opsloop.store.audit import GENESIS, default_source, entry_hash
from opsloop.store.migrate import alembic_config

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection

    from opsloop.store import Store

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="alice")
    yield s
    s.close()


def write_history(store: Store) -> None:
    """Ten entries through the calls that change state: registrations, alias moves, a
    deployment's status and desired-state changes, an event of the caller's own."""
    store.models.create_version("churn", artifact_digest=DIGEST, alias="champion")  # 3 events
    store.models.create_version("churn", artifact_digest=DIGEST)  # 1
    store.models.set_alias("churn", "champion", 2)  # 1
    store.deployments.save_status(
        "web",
        revision="r1",
        desired={"version": 2},
        live=None,
        sync_status="Synced",
        health_status="Healthy",
        reason="synced",
    )  # 1
    with acting("bob", "10.1.2.3"):
        store.deployments.record_change(
            "web", "deployment.traffic_changed", {"commit": "c1"}, before="v1", after="v2"
        )  # 1
        store.models.delete_alias("churn", "champion")  # 1
    store.events.emit("custom.note", "run", "r1", {"text": "hello"})  # 1
    store.models.update("churn", description="the churn model")  # 1


def tamper(store: Store, *statements: tuple[str, dict[str, Any]]) -> None:
    """Run SQL behind the store's back, first lifting the append-only triggers."""
    with store.engine.begin() as conn:
        lift_triggers(conn)
        for sql, params in statements:
            conn.execute(text(sql), params)


def lift_triggers(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER IF EXISTS events_append_only_update"))
        conn.execute(text("DROP TRIGGER IF EXISTS events_append_only_delete"))
    else:
        conn.execute(text("DROP TRIGGER IF EXISTS events_append_only ON events"))


def rows(store: Store) -> list[dict[str, Any]]:
    """Every entry as the database holds it, in chain order."""
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM events ORDER BY seq")).mappings()]


def forged_hash(row: dict[str, Any], *, seq: int, prev_hash: str, details: Any) -> str:
    when = row["time"]
    if isinstance(when, str):  # SQLite hands back text through a bare connection
        when = datetime.fromisoformat(when)
    return entry_hash(
        seq=seq,
        prev_hash=prev_hash,
        time=when,
        actor=row["actor"],
        source=row["source"],
        kind=row["kind"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        details=details,
    )


def test_untampered_history_verifies(store: Store) -> None:
    write_history(store)
    result = store.events.check()
    assert result.intact and result.reason is None
    assert result.entries == result.head_seq == 10
    assert result.message == "audit trail intact: 10 entries"
    events = store.events.list()
    assert [e.seq for e in events] == list(range(1, 11))
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert result.head_hash == events[-1].hash


def test_who_and_from_where(store: Store) -> None:
    write_history(store)
    by_kind = {e.kind: e for e in store.events.list()}
    assert by_kind["alias.set"].actor == "alice"
    assert by_kind["alias.set"].source == default_source()
    moved = by_kind["deployment.traffic_changed"]
    assert (moved.actor, moved.source) == ("bob", "10.1.2.3")
    assert (moved.details["before"], moved.details["after"]) == ("v1", "v2")
    assert by_kind["alias.deleted"].actor == "bob"


def test_state_changes_carry_before_and_after(store: Store) -> None:
    write_history(store)
    events = store.events.list()
    created = next(e for e in events if e.kind == "model_version.created")
    assert created.details["before"] is None
    assert created.details["after"]["version"] == 1
    assert created.details["artifact"] == DIGEST  # what callers read before is still there
    moves = [e.details for e in events if e.kind == "alias.set"]
    assert [(d["before"], d["after"]) for d in moves] == [
        (None, {"version": 1}),
        ({"version": 1}, {"version": 2}),
    ]
    assert moves[1]["previous"] == 1
    deleted = next(e for e in events if e.kind == "alias.deleted")
    assert (deleted.details["before"], deleted.details["after"]) == ({"version": 2}, None)
    status = next(e for e in events if e.kind == "deployment.status")
    assert status.details["before"] is None
    assert status.details["after"] == {"sync": "Synced", "health": "Healthy"}
    updated = next(e for e in events if e.kind == "model.updated")
    assert updated.details["before"] == {"description": ""}
    assert updated.details["after"] == {"description": "the churn model"}


def test_details_are_hashed_as_stored(store: Store) -> None:
    # Tuples come back as lists, int keys as strings, NaN as null, big ints as they are.
    store.events.emit("odd.details", "run", "r", {"t": (1, 2), 3: "x", "nan": math.nan})
    store.events.emit("big.int", "run", "r", {"n": 2**70, "f": 0.1, "s": "é\u2028"})
    assert store.events.check().entries == 2
    (odd, big) = store.events.list()
    assert odd.details == {"t": [1, 2], "3": "x", "nan": None}
    assert big.details["n"] == 2**70


def test_edited_details_are_found(store: Store) -> None:
    write_history(store)
    victim = rows(store)[4]
    assert victim["kind"] == "alias.set"
    tamper(
        store,
        (
            "UPDATE events SET details = :d WHERE id = :id",
            {"d": '{"alias": "champion", "version": 1, "previous": null}', "id": victim["id"]},
        ),
    )
    result = store.events.verify()
    assert not result.intact
    assert (result.reason, result.entry_id, result.position) == ("edited", victim["id"], 5)
    assert f"entry {victim['id']}" in result.message
    with pytest.raises(AuditChainError, match=r"broken \(edited\).*entry"):
        store.events.check()


def test_edited_actor_is_found(store: Store) -> None:
    write_history(store)
    victim = rows(store)[7]
    tamper(store, ("UPDATE events SET actor = 'mallory' WHERE id = :id", {"id": victim["id"]}))
    result = store.events.verify()
    assert (result.reason, result.entry_id) == ("edited", victim["id"])


def test_deleted_middle_entry_is_found(store: Store) -> None:
    write_history(store)
    entries = rows(store)
    tamper(store, ("DELETE FROM events WHERE id = :id", {"id": entries[3]["id"]}))
    result = store.events.verify()
    assert (result.reason, result.position) == ("missing", 4)
    assert result.entry_id == entries[4]["id"]
    assert result.entries == 3
    assert "position 4" in result.message and "missing" in result.message


def test_deleted_newest_entries_are_found(store: Store) -> None:
    write_history(store)
    entries = rows(store)
    tamper(store, ("DELETE FROM events WHERE seq >= 9", {}))
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("truncated", entries[7]["id"], 9)
    assert "newest 2 entries" in result.message
    assert result.entries == 8


def test_every_entry_deleted_is_found(store: Store) -> None:
    write_history(store)
    tamper(store, ("DELETE FROM events", {}))
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("truncated", None, 1)


def test_forged_entry_appended_is_found(store: Store) -> None:
    write_history(store)
    last = rows(store)[-1]
    tamper(
        store,
        (
            "INSERT INTO events (time, actor, kind, object_type, object_id, details, source, "
            "seq, prev_hash, hash) VALUES (:t, 'alice', 'alias.set', 'model', 'churn', "
            "'{}', NULL, 11, :p, :h)",
            {"t": datetime.now(UTC), "p": last["hash"], "h": "f" * 64},
        ),
    )
    forged = rows(store)[-1]
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("inserted", forged["id"], 11)


def test_forged_entry_inserted_in_the_middle_is_found(store: Store) -> None:
    """The forger renumbers the later entries, gives the forged one a hash that links to the
    entry before it, and moves the head: the entry after it still links past it."""
    write_history(store)
    entries = rows(store)
    moves = [
        ("UPDATE events SET seq = :new WHERE id = :id", {"new": e["seq"] + 1, "id": e["id"]})
        for e in reversed(entries[5:])  # from the end, so no two share a position
    ]
    details = {"alias": "champion", "version": 1, "previous": 2}
    prev = entries[4]
    digest = forged_hash(prev, seq=6, prev_hash=prev["hash"], details=details)
    tamper(
        store,
        *moves,
        (
            "INSERT INTO events (time, actor, kind, object_type, object_id, details, source, "
            "seq, prev_hash, hash) VALUES (:t, :a, 'alias.set', 'model', 'churn', :d, :s, 6, "
            ":p, :h)",
            {
                "t": prev["time"],
                "a": prev["actor"],
                "d": '{"alias": "champion", "version": 1, "previous": 2}',
                "s": prev["source"],
                "p": prev["hash"],
                "h": digest,
            },
        ),
        ("UPDATE audit_head SET seq = seq + 1", {}),
    )
    forged = next(r for r in rows(store) if r["seq"] == 6)
    assert forged["hash"] == digest
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("inserted", forged["id"], 6)


def test_swapped_entries_are_found(store: Store) -> None:
    """Two entries trade places: everything but their ids exchanged."""
    write_history(store)
    entries = rows(store)
    a, b = entries[2], entries[6]
    cols = ["time", "actor", "kind", "object_type", "object_id", "details", "source", "seq"]
    cols += ["prev_hash", "hash"]
    tamper(
        store,
        # Both leave their positions first: positions are unique.
        ("UPDATE events SET seq = -1 WHERE id = :id", {"id": a["id"]}),
        ("UPDATE events SET seq = -2 WHERE id = :id", {"id": b["id"]}),
        put_row(b, a["id"], cols, store, b["id"]),
        put_row(a, b["id"], cols, store, a["id"]),
    )
    result = store.events.verify()
    assert result.reason == "reordered"
    assert result.entry_id in (a["id"], b["id"])
    assert result.position in (a["seq"], b["seq"])


def details_text(store: Store, event_id: int) -> str:
    with store.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT CAST(details AS TEXT) FROM events WHERE id = :id"), {"id": event_id}
            ).scalar_one()
        )


def put_row(
    row: dict[str, Any], at: int, cols: list[str], store: Store, source_id: int
) -> tuple[str, dict[str, Any]]:
    """The statement that writes ``row``'s columns onto entry ``at``."""
    values = {c: row[c] for c in cols}
    values["details"] = details_text(store, source_id)
    sets = ", ".join(f"{c} = :{c}" for c in cols)
    return f"UPDATE events SET {sets} WHERE id = :id", {**values, "id": at}


def test_swapped_contents_at_their_positions_are_found(store: Store) -> None:
    """Two neighbours trade contents but keep their positions and ids."""
    write_history(store)
    entries = rows(store)
    a, b = entries[3], entries[4]
    cols = ["time", "actor", "kind", "object_type", "object_id", "details", "source"]
    cols += ["prev_hash", "hash"]
    tamper(
        store, put_row(b, a["id"], cols, store, b["id"]), put_row(a, b["id"], cols, store, a["id"])
    )
    result = store.events.verify()
    assert (result.reason, result.entry_id, result.position) == ("reordered", a["id"], 4)


def test_rewritten_entry_with_a_new_hash_is_found(store: Store) -> None:
    """An entry edited and its own hash recomputed: the next one no longer links to it."""
    write_history(store)
    entries = rows(store)
    victim = entries[5]
    details = {"forged": True}
    digest = forged_hash(victim, seq=6, prev_hash=victim["prev_hash"], details=details)
    tamper(
        store,
        (
            "UPDATE events SET details = :d, hash = :h WHERE id = :id",
            {"d": '{"forged": true}', "h": digest, "id": victim["id"]},
        ),
    )
    result = store.events.verify()
    assert not result.intact
    assert result.entry_id in (victim["id"], entries[6]["id"])


def rewrite_from(store: Store, position: int, *, keep: int | None = None) -> None:
    """Rewrite the chain consistently from ``position`` on, as someone with write access to
    the database and the hashing rule could: each entry's details changed and every hash
    recomputed, the head moved; ``keep`` drops the entries after that position first."""
    entries = rows(store)
    if keep is not None:
        entries = entries[:keep]
    statements: list[tuple[str, dict[str, Any]]] = []
    if keep is not None:
        statements.append(("DELETE FROM events WHERE seq > :k", {"k": keep}))
    prev = entries[position - 2]["hash"] if position > 1 else GENESIS
    for row in entries[position - 1 :]:
        digest = forged_hash(row, seq=row["seq"], prev_hash=prev, details={"forged": True})
        statements.append(
            (
                "UPDATE events SET details = :d, prev_hash = :p, hash = :h WHERE id = :id",
                {"d": '{"forged": true}', "p": prev, "h": digest, "id": row["id"]},
            )
        )
        prev = digest
    statements.append(
        ("UPDATE audit_head SET seq = :s, hash = :h", {"s": entries[-1]["seq"], "h": prev})
    )
    tamper(store, *statements)


def test_a_consistent_rewrite_is_found_only_against_a_kept_head(store: Store) -> None:
    """A rewrite that recomputes every hash is a valid chain again: only a head recorded
    before, outside the database, tells; the entries before the rewrite still match theirs."""
    write_history(store)
    before = store.events.check()
    fifth = rows(store)[4]["hash"]
    rewrite_from(store, 6)
    assert store.events.verify().intact  # the limit of a chain alone
    result = store.events.verify(expect=[(10, before.head_hash or "")])
    assert (result.reason, result.position) == ("rewritten", 10)
    assert "rewritten" in result.message
    assert store.events.verify(expect=[(5, fifth[:12])]).intact  # untouched prefix
    with pytest.raises(AuditChainError, match=r"position 10"):
        store.events.check(expect=[(5, fifth), (10, before.head_hash or "")])


def test_a_rewrite_that_also_drops_the_newest_entries_is_found(store: Store) -> None:
    write_history(store)
    before = store.events.check()
    rewrite_from(store, 6, keep=8)
    assert store.events.verify().intact
    result = store.events.verify(expect=[(10, before.head_hash or "")])
    assert (result.reason, result.position) == ("rewritten", 10)
    assert "ends at position 8" in result.message


@pytest.mark.parametrize(
    ("anchor", "problem"),
    [((0, "ab" * 32), "position 0"), ((3, "abc"), "12 to 64 hex"), ((3, "zz" * 8), "hex")],
)
def test_a_malformed_anchor_is_a_clear_error(
    store: Store, anchor: tuple[int, str], problem: str
) -> None:
    write_history(store)
    with pytest.raises(SecurityError, match=problem):
        store.events.verify(expect=[anchor])


def test_head_deleted_is_found_and_appends_refused(store: Store) -> None:
    write_history(store)
    tamper(store, ("DELETE FROM audit_head", {}))
    result = store.events.verify()
    assert (result.reason, result.head_hash) == ("truncated", None)
    with pytest.raises(AuditChainError, match="head record"):
        store.events.emit("after.tamper", "run", "r")
    with pytest.raises(AuditChainError):
        store.models.set_alias("churn", "champion", 1)
    # Refused whole: the alias did not move without its event.
    assert "champion" not in store.models.get("churn").aliases


def test_append_only_triggers_still_refuse_changes(store: Store) -> None:
    write_history(store)
    for sql in ("UPDATE events SET actor = 'x'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(sql))
    assert store.events.verify().intact


def test_an_event_outside_a_write_is_refused(store: Store) -> None:
    with store.db.read() as s, pytest.raises(StoreError, match=r"inside Database\.write"):
        store.db.event(s, "x", "run", "r")


def test_a_failed_write_appends_nothing(store: Store) -> None:
    write_history(store)
    with pytest.raises(RuntimeError), store.db.write() as s:
        store.db.event(s, "doomed", "run", "r")
        raise RuntimeError("boom")
    result = store.events.check()
    assert result.entries == 10
    store.events.emit("next", "run", "r")
    assert store.events.check().entries == 11


def test_list_filters_and_pages(store: Store) -> None:
    write_history(store)
    everything = store.events.list()
    assert [e.kind for e in store.events.list(actor="bob")] == [
        "deployment.traffic_changed",
        "alias.deleted",
    ]
    page1 = store.events.list(limit=4)
    page2 = store.events.list(limit=4, after_id=page1[-1].id)
    page3 = store.events.list(limit=4, after_id=page2[-1].id)
    assert [e.id for e in page1 + page2 + page3] == [e.id for e in everything]
    assert len(page3) == 2
    newest = store.events.list(limit=3, newest_first=True)
    assert [e.id for e in newest] == [e.id for e in reversed(everything[-3:])]
    assert store.events.list(kind="model_version*") == [
        e for e in everything if e.kind.startswith("model_version")
    ]
    assert store.events.list(kind="model%*") == []  # a prefix is not a LIKE pattern
    later = store.events.list(since=datetime.now(UTC) + timedelta(minutes=1))
    assert later == []


def test_concurrent_appends_keep_one_chain(store_url: str) -> None:
    """Writers in several threads, each with its own connection pool, append at once: every
    entry gets its own position and links to the one before."""
    open_store(store_url).close()  # migrate once
    threads, each = 6, 15
    errors: list[BaseException] = []
    go = threading.Barrier(threads)

    def writer(n: int) -> None:
        s = open_store(store_url, actor=f"w{n}")
        try:
            go.wait()
            for i in range(each):
                if i % 5 == 0:
                    s.models.create_version("shared", artifact_digest=DIGEST)
                else:
                    s.events.emit("tick", "run", f"w{n}", {"i": i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    store = open_store(store_url)
    result = store.events.check()
    # Each create_version also records model.created once for the first registration.
    assert result.entries == threads * each + 1
    assert len(store.events.list(kind="tick", limit=10_000)) == threads * (each - 3)
    store.close()


def test_verify_reads_one_snapshot_while_others_append(store_url: str) -> None:
    store = open_store(store_url)
    for i in range(30):
        store.events.emit("seed", "run", "r", {"i": i})
    stop = threading.Event()

    def append() -> None:
        s = open_store(store_url)
        while not stop.is_set():
            s.events.emit("more", "run", "r")
        s.close()

    t = threading.Thread(target=append)
    t.start()
    try:
        results = [store.events.verify(batch=7) for _ in range(5)]
    finally:
        stop.set()
        t.join()
    assert all(r.intact for r in results), [r.message for r in results]
    store.close()


def test_migration_hashes_existing_events(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0006_prediction_ids")
        conn.commit()
        for i in range(5):
            conn.execute(
                text(
                    "INSERT INTO events (time, actor, kind, object_type, object_id, details) "
                    "VALUES (:t, 'old', 'legacy', 'run', :o, :d)"
                ),
                {
                    "t": datetime(2026, 1, 1, 12, 0, i, 1234 * i, tzinfo=UTC),
                    "o": f"r{i}",
                    "d": f'{{"i": {i}, "x": [1.5, null]}}',
                },
            )
        conn.commit()
    engine.dispose()
    store = open_store(store_url)
    result = store.events.check()
    assert result.entries == 5
    old = store.events.list()
    assert [e.seq for e in old] == [1, 2, 3, 4, 5] and all(e.source is None for e in old)
    store.events.emit("new", "run", "r")
    assert store.events.check().entries == 6
    assert store.events.list()[-1].prev_hash == old[-1].hash
    store.close()


def test_remediation_and_sync_events_carry_before_and_after(store: Store) -> None:
    now = datetime.now(UTC)
    with store.incidents.correlation() as tx:
        inc = tx.open_incident(
            title="latency",
            kind="latency",
            severity="warning",
            opened_at=now,
            updated_at=now,
            root_causes=[],
            details={},
            alert_ids=[],
        )
    action = store.incidents.create_action(
        inc,
        action="rollback",
        status="awaiting_approval",
        policy="p",
        created_at=now,
        params={},
        event="remediation.awaiting_approval",
    )
    store.incidents.update_action(
        action, status="approved", approved_by="dana", event="remediation.approved"
    )
    store.incidents.resolve(inc, reason="fixed", by="dana")
    store.deployments.record_sync(
        "web",
        revision="r2",
        started_at=now,
        result="succeeded",
        diff={"version": {"live": 1, "desired": 2}},
        details={"trigger": "manual"},
    )
    store.deployments.record_sync(
        "web",
        revision="r3",
        started_at=now,
        result="failed",
        diff={"version": {"live": 2, "desired": 3}},
        details={"error": "boom"},
        kind="deployment.sync_failed",
    )
    store.deployments.save_status(
        "web",
        revision="r3",
        desired=None,
        live=None,
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )
    store.deployments.delete("web", {"reason": "pruned"})
    got = {
        e.kind: (e.details["before"], e.details["after"])
        for e in store.events.list()
        if "before" in e.details
    }
    assert got["remediation.awaiting_approval"] == (None, {"status": "awaiting_approval"})
    assert got["remediation.approved"] == (
        {"status": "awaiting_approval"},
        {"status": "approved"},
    )
    assert got["remediation.cancelled"] == ({"status": "approved"}, {"status": "cancelled"})
    assert got["incident.resolved"] == ({"status": "open"}, {"status": "resolved"})
    assert got["deployment.synced"] == ({"version": 1}, {"version": 2})
    assert got["deployment.sync_failed"] == ({"version": 2}, {"version": 2})
    assert got["deployment.removed"] == (
        {"revision": "r3", "sync": "Synced", "health": "Healthy"},
        None,
    )
    assert store.events.check().intact
