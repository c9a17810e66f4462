"""The audit log: every change to the store, who made it and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, StoreDep
from opsloop.secops.access import authorize
from opsloop.store.types import AuditVerification, EventInfo

__all__ = ["router"]

router = APIRouter(tags=["events"])


@router.get(
    "/events/verify",
    response_model=AuditVerification,
    responses=problems(),
    summary="Verify the audit chain",
)
def verify_events(caller: Caller, store: StoreDep) -> AuditVerification:
    """Walk the audit chain: intact, or where and how it was broken (edited, missing,
    inserted, reordered or truncated entries)."""
    authorize(caller, "read")
    return store.events.verify()


@router.get(
    "/events",
    response_model=Page[EventInfo],
    responses=problems(400),
    summary="List audit events",
)
def list_events(
    request: Request,
    caller: Caller,
    store: StoreDep,
    object_type: Annotated[str | None, Query(description="run, model, deployment …")] = None,
    object_id: Annotated[str | None, Query(description="The object's id or name.")] = None,
    kind: Annotated[
        str | None, Query(description="The event's kind; a trailing * matches a prefix.")
    ] = None,
    actor: Annotated[str | None, Query(description="Events of this actor.")] = None,
    since: Annotated[datetime | None, Query(description="From this time on.")] = None,
    newest_first: Annotated[bool, Query(description="Newest first (default oldest).")] = False,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[EventInfo]:
    """Audit events, oldest first (or newest first), filtered by object, kind, actor or time."""
    authorize(caller, "read")
    found = store.events.list(
        object_type=object_type, object_id=object_id, kind=kind, since=since, limit=10**9
    )
    if actor is not None:
        found = [e for e in found if e.actor == actor]
    items, next_cursor = page(
        request,
        found,
        key=lambda e: [sort_value(e.id)],
        scope=scope_of(
            "events",
            type=object_type,
            id=object_id,
            kind=kind,
            actor=actor,
            since=since,
            newest=newest_first,
        ),
        cursor=cursor,
        limit=limit,
        descending=newest_first,
    )
    return Page[EventInfo](items=items, next_cursor=next_cursor)
