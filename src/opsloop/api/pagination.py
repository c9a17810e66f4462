"""Opaque cursors for list endpoints.

A list is ordered by a total key (the sort field, then a unique id). A page ends at an item;
the cursor to the next page holds that item's key and the list it belongs to (the endpoint
and its filters), as urlsafe base64 of JSON with an HMAC, so a client can neither forge one
nor carry one over to another query. The next page starts after that key, not at an offset:
items written meanwhile neither repeat nor shift the pages.

The key is made by the server at start: cursors do not outlive it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Query, Request

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorCodec",
    "CursorParam",
    "LimitParam",
    "codec",
    "page",
    "scope_of",
    "sort_value",
]

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: The ``limit`` query parameter of a list (default :data:`DEFAULT_LIMIT`).
LimitParam = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="Most items in the page (1 to 1000).")
]
#: The ``cursor`` query parameter of a list.
CursorParam = Annotated[
    str | None,
    Query(max_length=4096, description="next_cursor of the previous page; omit for the first."),
]

_SIG = 16  # bytes of HMAC-SHA256 kept: forging one is still a 2**128 guess


def sort_value(value: Any) -> list[Any]:
    """A JSON-comparable sort key for one value: None sorts first, then numbers, then text
    (each position of a key always compares values of one type)."""
    if value is None:
        return [0, 0, ""]
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return [1, float(value), ""]
    return [2, 0, str(value)]


class CursorCodec:
    """Signs and checks cursors with a key of this server.

    Args:
        key: The HMAC key; a random one by default.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG]

    def encode(self, scope: str, key: list[Any]) -> str:
        """The cursor after the item of ``key`` in the list ``scope``."""
        payload = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, scope: str, cursor: str) -> list[Any]:
        """The key a cursor holds.

        Raises:
            HTTPException: 400 when the cursor was not made by this server for this list.
        """
        bad = HTTPException(
            400,
            "the cursor is not valid for this list: pass next_cursor from the previous page "
            "of the same query unchanged (cursors do not outlive the server)",
        )
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise bad from None
        sig, payload = raw[:_SIG], raw[_SIG:]
        if len(sig) != _SIG or not hmac.compare_digest(sig, self._sign(payload)):
            raise bad
        data = json.loads(payload)
        if data.get("s") != scope or not isinstance(data.get("k"), list):
            raise bad
        found: list[Any] = data["k"]
        return found


def codec(request: Request) -> CursorCodec:
    """The app's cursor codec."""
    found: CursorCodec = request.app.state.cursors
    return found


def page(
    request: Request,
    items: Sequence[T],
    *,
    key: Callable[[T], list[Any]],
    scope: str,
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (in any order: they are sorted here by ``key``) and the cursor
    to the next, None on the last page.

    Args:
        request: The request (the app's codec signs the cursor).
        items: Every item of the list.
        key: A total order: distinct items must have distinct keys.
        scope: The endpoint and its filters: a cursor only serves the list it came from.
        cursor: The cursor from the previous page, or None for the first.
        limit: Most items in the page.
        descending: Largest key first.
    """
    signer = codec(request)
    keyed = sorted(((key(i), i) for i in items), key=lambda p: p[0], reverse=descending)
    if cursor is not None:
        after = signer.decode(scope, cursor)
        try:
            keyed = [p for p in keyed if (p[0] < after if descending else p[0] > after)]
        except TypeError:  # a key of another shape: signed for this scope, so never in practice
            raise HTTPException(400, "the cursor is not valid for this list") from None
    chosen = keyed[:limit]
    more = len(keyed) > limit
    next_cursor = signer.encode(scope, chosen[-1][0]) if more and chosen else None
    return [i for _, i in chosen], next_cursor


def scope_of(endpoint: str, /, **filters: Any) -> str:
    """The scope of a list: its endpoint and its filters, canonically."""
    return endpoint + "?" + json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
