"""The audit trail's hash chain: how one entry's hash is made.

Every event is an entry of one chain: entry ``seq`` (1, 2, 3 …, no gaps) stores the hash of
the entry before it (``prev_hash``; :data:`GENESIS` for the first) and its own hash, a SHA-256
over a canonical serialisation (sorted-key JSON) of its position, that previous hash and every
field it records. Editing a field, deleting, inserting or reordering entries therefore breaks
either an entry's own hash or the link to the one before it; the one-row chain head
(``audit_head``: the last position and hash) makes deleting the newest entries show as well.

The migration that added the chain hashes the events written before it with this same
function, so the format is versioned (``"v"``) should it ever change.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from typing import Any

from opsloop.store.base import dump_json, load_json

__all__ = [
    "FORMAT",
    "GENESIS",
    "REASONS",
    "default_source",
    "entry_hash",
    "normalize_details",
]

GENESIS = "0" * 64
"""The previous hash of the first entry."""

FORMAT = 1
"""Version of the serialisation that is hashed."""

REASONS = ("edited", "missing", "inserted", "reordered", "truncated")
"""Why verification can find the chain broken."""


def default_source() -> str:
    """Where a process's own writes come from when no caller names it: ``local@HOST``.

    The control-plane server names each request's client address instead (see
    :func:`opsloop.store.acting.acting`); the CLI, pipelines and the loop write as the
    process on this host.
    """
    return f"local@{socket.gethostname()}"


def normalize_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` as the JSON column gives them back (tuples as lists, keys as strings,
    NaN as null), so that the hash made on write is the hash made again on read."""
    value = load_json(dump_json(details))
    if not isinstance(value, dict):  # pragma: no cover - a dict encodes as an object
        raise TypeError("event details must be a JSON object")
    return value


def _time_text(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    seq: int,
    prev_hash: str,
    time: datetime,
    actor: str,
    source: str | None,
    kind: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
) -> str:
    """The hex SHA-256 of one entry at position ``seq`` following ``prev_hash``."""
    payload = {
        "v": FORMAT,
        "seq": seq,
        "prev_hash": prev_hash,
        "time": _time_text(time),
        "actor": actor,
        "source": source,
        "kind": kind,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()
