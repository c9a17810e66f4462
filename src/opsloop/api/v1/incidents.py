"""Alerts and incidents: receive Alertmanager's webhooks; list, show (alerts, remediation
actions, timeline), and approve or reject the remediation an incident waits on."""

from __future__ import annotations

from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsloop.aiops.alerts import parse_alertmanager
from opsloop.aiops.incidents import TimelineEntry, incident_alerts, list_actions, timeline
from opsloop.aiops.receiver import AlertReceiver
from opsloop.aiops.remediation import approve, reject
from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import (
    BodyTooLargeError,
    Caller,
    Page,
    ProjectDep,
    StoreDep,
    git_lock,
    read_body,
    writing,
)
from opsloop.loop.actions import default_executor
from opsloop.secops.access import authorize
from opsloop.store.types import ActionInfo, AlertInfo, IncidentInfo

__all__ = ["MAX_WEBHOOK_BYTES", "WEBHOOK_THREADS", "router"]

WEBHOOK_THREADS = 64
"""Threads webhook deliveries run and wait in, apart from those of the other routes."""

MAX_WEBHOOK_BYTES = 16 * 1024 * 1024
"""The largest Alertmanager webhook body taken (a payload of
:data:`~opsloop.aiops.alerts.MAX_WEBHOOK_ALERTS` alerts with ordinary labels fits)."""

router = APIRouter(tags=["incidents"])

IncidentId = Annotated[int, Path(description="The incident's id.", ge=1)]


class IncidentDetail(BaseModel):
    """An incident with its alerts, remediation actions and timeline."""

    incident: IncidentInfo
    alerts: list[AlertInfo]
    actions: list[ActionInfo]
    timeline: list[TimelineEntry]


class RejectRequest(BaseModel):
    """Why the remediation is rejected."""

    reason: str = Field(default="", max_length=2000, description="For the timeline.")


class WebhookAnswer(BaseModel):
    """What an Alertmanager webhook delivery did."""

    alerts: list[int] = Field(
        description="The stored alert of each alert of the payload, in order (a repeat of a "
        "firing alert is counted on its row)."
    )
    opened: list[int] = Field(description="Incidents opened by these alerts.")
    updated: list[int] = Field(description="Incidents these alerts joined.")
    resolved: list[int] = Field(description="Incidents of these alerts resolved.")


@router.post(
    "/alerts/alertmanager",
    response_model=WebhookAnswer,
    responses=problems(400, 413),
    summary="Receive an Alertmanager webhook",
)
async def alertmanager_webhook(request: Request, caller: Caller) -> WebhookAnswer:
    """Alerts from Prometheus Alertmanager (a `webhook_configs` receiver, payload version 4):
    deduplicated, correlated over the lineage graph into incidents, and committed before the
    answer. Deliveries that arrive while others are ingested are correlated together, in one
    transaction. A body that is not a version 4 payload is refused whole (400, naming the
    field), and nothing of it is stored. Needs the `developer` role (a service account's
    token in Alertmanager's `http_config.authorization`)."""
    authorize(caller, "log")
    try:
        body = await read_body(request, MAX_WEBHOOK_BYTES)
    except BodyTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    # Parsing a large body takes a while: off the event loop, as the ingest.
    alerts = await run_in_threadpool(parse_alertmanager, body)
    receiver: AlertReceiver = request.app.state.alert_receiver
    # Deliveries waiting for a shared transaction wait in threads of their own: a storm of
    # webhooks does not take the threads every other route runs in.
    limiter = getattr(request.app.state, "webhook_threads", None)
    if limiter is None:
        limiter = request.app.state.webhook_threads = CapacityLimiter(WEBHOOK_THREADS)
    with writing(request, caller):
        result = await to_thread.run_sync(receiver.submit, alerts, limiter=limiter)
    return WebhookAnswer(
        alerts=[a.id for a in result.alerts],
        opened=result.opened,
        updated=result.updated,
        resolved=result.resolved,
    )


@router.get(
    "/incidents",
    response_model=Page[IncidentInfo],
    responses=problems(400),
    summary="List incidents",
)
def list_incidents(
    request: Request,
    caller: Caller,
    store: StoreDep,
    status: Annotated[str | None, Query(description="open or resolved.")] = None,
    kind: Annotated[str | None, Query(description="data_drift, latency …")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[IncidentInfo]:
    """Incidents, newest first."""
    authorize(caller, "read")
    total = sum(store.incidents.count_by_status(kind=kind).values())
    found = store.incidents.list(status=status, kind=kind, limit=max(total, 1))
    items, next_cursor = page(
        request,
        found,
        key=lambda i: [sort_value(i.opened_at), sort_value(i.id)],
        scope=scope_of("incidents", status=status, kind=kind),
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[IncidentInfo](items=items, next_cursor=next_cursor)


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    responses=problems(404),
    summary="An incident",
)
def get_incident(caller: Caller, store: StoreDep, incident_id: IncidentId) -> IncidentDetail:
    """An incident: root causes, alerts, remediation actions and timeline."""
    authorize(caller, "read")
    return IncidentDetail(
        incident=store.incidents.get(incident_id),
        alerts=incident_alerts(store, incident_id),
        actions=list_actions(store, incident_id),
        timeline=timeline(store, incident_id),
    )


@router.post(
    "/incidents/{incident_id}/approve",
    response_model=list[ActionInfo],
    responses=problems(404, 409),
    summary="Approve an incident's waiting remediation",
)
def approve_remediation(
    request: Request, caller: Caller, proj: ProjectDep, incident_id: IncidentId
) -> list[ActionInfo]:
    """Approve the actions that await approval, and run them now, as the caller."""
    authorize(caller, "remediation.approve")
    # Approved actions may commit to Git (a rollback): one writer at a time, as the caller.
    with git_lock, writing(request, caller):
        return approve(proj.store, incident_id, default_executor(proj), by=caller.name)


@router.post(
    "/incidents/{incident_id}/reject",
    response_model=list[ActionInfo],
    responses=problems(400, 404, 409),
    summary="Reject an incident's waiting remediation",
)
def reject_remediation(
    request: Request,
    caller: Caller,
    store: StoreDep,
    incident_id: IncidentId,
    body: Annotated[RejectRequest | None, Body()] = None,
) -> list[ActionInfo]:
    """Reject the actions that await approval; nothing runs."""
    authorize(caller, "remediation.approve")
    with writing(request, caller):
        return reject(store, incident_id, by=caller.name, reason=body.reason if body else "")


@router.get(
    "/alerts",
    response_model=Page[AlertInfo],
    responses=problems(400),
    summary="List alerts",
)
def list_alerts(
    request: Request,
    caller: Caller,
    store: StoreDep,
    status: Annotated[str | None, Query(description="firing or resolved.")] = None,
    name: Annotated[str | None, Query(description="Alerts of this name.")] = None,
    incident_id: Annotated[int | None, Query(description="Alerts of this incident.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[AlertInfo]:
    """Alerts, newest first."""
    authorize(caller, "read")
    found = store.incidents.list_alerts(
        status=status, name=name, incident_id=incident_id, limit=10**9
    )
    items, next_cursor = page(
        request,
        found,
        key=lambda a: [sort_value(a.starts_at), sort_value(a.id)],
        scope=scope_of("alerts", status=status, name=name, incident=incident_id),
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[AlertInfo](items=items, next_cursor=next_cursor)


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertInfo,
    responses=problems(404),
    summary="An alert",
)
def get_alert(
    caller: Caller,
    store: StoreDep,
    alert_id: Annotated[int, Path(description="The alert's id.", ge=1)],
) -> AlertInfo:
    """One alert."""
    authorize(caller, "read")
    return store.incidents.get_alert(alert_id)
