"""Incidents in the metadata store: alerts correlated, attached, ranked, resolved.

:func:`ingest_alerts` is the one entry point for new alerts: it deduplicates them, correlates
the ones not yet in an incident with each other and with the alerts of open incidents, attaches
them to an open incident or opens a new one, and resolves incidents whose alerts have all
ended — all in one transaction, each change with its audit event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from opsloop.aiops.alerts import AlertIn, AlertInfo, parse_alertmanager, record_in_session
from opsloop.aiops.correlation import DEFAULT_WINDOW, IncidentSummary, correlate, summarize
from opsloop.aiops.lineage import LineageGraph
from opsloop.errors import AIOpsError, NotFoundError

if TYPE_CHECKING:
    from opsloop.store import Store
    from opsloop.store import models as m

__all__ = [
    "ACTION_STATUSES",
    "PENDING_ACTION_STATUSES",
    "ActionInfo",
    "IncidentInfo",
    "IngestResult",
    "TimelineEntry",
    "get_incident",
    "incident_alerts",
    "ingest_alertmanager",
    "ingest_alerts",
    "list_actions",
    "list_incidents",
    "resolve",
    "timeline",
]

ACTION_STATUSES = (
    "awaiting_approval",
    "approved",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "rejected",
    "dry_run",
)
"""Every status a remediation action can have."""

PENDING_ACTION_STATUSES = ("awaiting_approval", "approved", "running")
"""Statuses of actions that have not ended; an incident with one is not auto-resolved."""

# Key of the transaction-scoped advisory lock that serialises correlation on PostgreSQL.
_CORRELATION_LOCK = 0x6F70736C6F6F7031


class IncidentInfo(BaseModel):
    """An incident as stored.

    ``root_causes`` holds the ranked candidates as dicts (see
    :class:`~opsloop.aiops.correlation.RootCause`); ``details`` holds ``alert_count``,
    ``categories``, ``subjects`` (the lineage nodes alerted on) and ``deployments``.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    title: str
    kind: str
    status: str
    severity: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    root_causes: list[dict[str, Any]]
    details: dict[str, Any]

    @property
    def root_cause(self) -> str | None:
        """The first-ranked root-cause node, if any."""
        return str(self.root_causes[0]["node"]) if self.root_causes else None

    @property
    def deployments(self) -> list[str]:
        """Deployments the incident's alerts are on."""
        return [str(d) for d in self.details.get("deployments", [])]

    @property
    def models(self) -> list[str]:
        """Registered models the incident's alerts are on."""
        return [str(d) for d in self.details.get("models", [])]

    @property
    def alert_count(self) -> int:
        """How many alerts the incident holds."""
        return int(self.details.get("alert_count", 0))

    @classmethod
    def from_row(cls, row: m.Incident) -> IncidentInfo:
        """Read an ORM row."""
        return cls(
            id=row.id,
            title=row.title,
            kind=row.kind,
            status=row.status,
            severity=row.severity,
            opened_at=row.opened_at,
            updated_at=row.updated_at,
            resolved_at=row.resolved_at,
            root_causes=list((row.root_causes or {}).get("ranked", [])),
            details=dict(row.details or {}),
        )


class ActionInfo(BaseModel):
    """A remediation action of an incident, as stored."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    incident_id: int
    action: str
    status: str
    policy: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    approved_by: str | None
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None


class TimelineEntry(BaseModel):
    """One line of an incident's timeline.

    Attributes:
        time: When it happened.
        type: ``alert``, ``action`` or ``event``.
        what: A short description (``HighLatency fired``, ``retrain: succeeded`` …).
        actor: Who acted (events only).
        ref: The alert id, action id or event id.
        details: The rest.
    """

    model_config = ConfigDict(frozen=True)

    time: datetime
    type: Literal["alert", "action", "event"]
    what: str
    actor: str = ""
    ref: int | None = None
    details: dict[str, Any]


@dataclass
class IngestResult:
    """What :func:`ingest_alerts` did."""

    alerts: list[AlertInfo] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ingest_alerts(
    store: Store,
    alerts: Sequence[AlertIn],
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    auto_resolve: bool = True,
) -> IngestResult:
    """Store alerts (deduplicated), correlate them into incidents, resolve what has ended.

    Alerts not yet in an incident are correlated with each other and with the recent alerts of
    open incidents. A group that reaches an open incident is attached to it (to the oldest, if
    it reaches several: an incident's identity stays stable for the people working on it) and
    the incident's root causes, kind, severity and title are worked out again from all its
    alerts; a group that reaches none opens a new incident.

    Args:
        store: The metadata store.
        alerts: Incoming alerts (from rules, detectors or Alertmanager).
        graph: The lineage graph.
        window: Correlation window (see :func:`~opsloop.aiops.correlation.correlate`).
        auto_resolve: Resolve an open incident once all its alerts are resolved, unless a
            remediation action of it is still pending.
    """
    from opsloop.store import models as m

    result = IngestResult()
    with store.write_session() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CORRELATION_LOCK})
        rows = record_in_session(store, s, alerts)
        result.opened, result.updated = _correlate(store, s, graph, window, rows)
        if auto_resolve:
            touched = {r.incident_id for r in rows if r.incident_id is not None}
            for inc_id in sorted(touched):
                inc = s.get(m.Incident, inc_id)
                if inc is not None and inc.status == "open" and _all_ended(s, inc_id):
                    ended = s.scalars(
                        select(m.Alert.ends_at).where(m.Alert.incident_id == inc_id)
                    ).all()
                    at = max((e for e in ended if e is not None), default=None)
                    _resolve_row(store, s, inc, at=at, reason="all alerts resolved", by=None)
                    result.resolved.append(inc_id)
        s.flush()
        result.alerts = [AlertInfo.model_validate(r) for r in rows]
    return result


def ingest_alertmanager(
    store: Store,
    payload: Mapping[str, Any] | str | bytes,
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    received_at: datetime | None = None,
) -> IngestResult:
    """Ingest an Alertmanager webhook body (version 4): what the webhook endpoint calls.

    Raises:
        WebhookPayloadError: The body is not a version 4 payload (the message names the
            field; answer HTTP 400).
    """
    alerts = parse_alertmanager(payload, received_at=received_at)
    return ingest_alerts(store, alerts, graph, window=window)


def _all_ended(s: Session, incident_id: int) -> bool:
    from opsloop.store import models as m

    firing = s.scalar(
        select(m.Alert.id)
        .where(m.Alert.incident_id == incident_id, m.Alert.status == "firing")
        .limit(1)
    )
    if firing is not None:
        return False
    pending = s.scalar(
        select(m.IncidentAction.id)
        .where(
            m.IncidentAction.incident_id == incident_id,
            m.IncidentAction.status.in_(PENDING_ACTION_STATUSES),
        )
        .limit(1)
    )
    return pending is None


def _correlate(
    store: Store,
    s: Session,
    graph: LineageGraph,
    window: timedelta,
    batch: Sequence[m.Alert],
) -> tuple[list[int], list[int]]:
    from opsloop.store import models as m

    loose = {r.id: r for r in batch if r.incident_id is None}
    # Firing alerts left out of any incident earlier (recorded without correlation) too.
    for r in s.scalars(
        select(m.Alert).where(m.Alert.incident_id.is_(None), m.Alert.status == "firing")
    ):
        loose.setdefault(r.id, r)
    if not loose:
        return [], []
    earliest = min(r.starts_at for r in loose.values())
    context = list(
        s.scalars(
            select(m.Alert)
            .join(m.Incident, m.Alert.incident_id == m.Incident.id)
            .where(m.Incident.status == "open", m.Alert.last_seen_at >= earliest - window)
            .order_by(m.Alert.id)
        )
    )
    pool = context + sorted(loose.values(), key=lambda r: r.id)
    infos = [AlertInfo.model_validate(r) for r in pool]
    drafts = correlate(infos, graph, window, groups=[r.incident_id for r in pool])
    opened: list[int] = []
    updated: list[int] = []
    for draft in drafts:
        members = [pool[i] for i in draft.alert_indices]
        new = [r for r in members if r.incident_id is None]
        if not new:
            continue
        existing = sorted({r.incident_id for r in members if r.incident_id is not None})
        if existing:
            inc = s.get(m.Incident, existing[0])
            if inc is None:  # pragma: no cover - the join above found it in this transaction
                raise AIOpsError(f"incident {existing[0]} vanished while correlating")
            for r in new:
                r.incident_id = inc.id
            s.flush()
            store.add_event(
                s,
                "incident.alerts_attached",
                "incident",
                str(inc.id),
                {"alerts": [r.id for r in new], "names": sorted({r.name for r in new})},
            )
            _refresh(store, s, inc, graph, window)
            updated.append(inc.id)
        else:
            summary = draft.summary
            inc = m.Incident(
                title=summary.title[:512],
                kind=summary.kind,
                status="open",
                severity=summary.severity,
                opened_at=summary.opened_at,
                updated_at=summary.updated_at,
                root_causes={"ranked": [rc.to_dict() for rc in summary.root_causes]},
                details=_details(summary, window),
            )
            s.add(inc)
            s.flush()
            for r in new:
                r.incident_id = inc.id
            s.flush()
            store.add_event(
                s,
                "incident.opened",
                "incident",
                str(inc.id),
                {
                    "title": inc.title,
                    "kind": inc.kind,
                    "root_cause": summary.root_cause.node if summary.root_cause else None,
                    "alerts": [r.id for r in new],
                },
            )
            opened.append(inc.id)
    return opened, updated


def _details(summary: IncidentSummary, window: timedelta) -> dict[str, Any]:
    return {
        "alert_count": summary.alert_count,
        "categories": summary.categories,
        "subjects": summary.subjects,
        "deployments": summary.deployments,
        "models": summary.models,
        "window_s": window.total_seconds(),
    }


def _refresh(
    store: Store, s: Session, inc: m.Incident, graph: LineageGraph, window: timedelta
) -> None:
    """Work out an incident's summary again from all its alerts."""
    from opsloop.store import models as m

    rows = s.scalars(
        select(m.Alert).where(m.Alert.incident_id == inc.id).order_by(m.Alert.id)
    ).all()
    summary = summarize([AlertInfo.model_validate(r) for r in rows], graph)
    before = {
        "kind": inc.kind,
        "severity": inc.severity,
        "root_cause": ((inc.root_causes or {}).get("ranked") or [{}])[0].get("node"),
    }
    inc.title = summary.title[:512]
    inc.kind = summary.kind
    inc.severity = summary.severity
    inc.opened_at = min(inc.opened_at, summary.opened_at)
    inc.updated_at = max(inc.updated_at, summary.updated_at)
    inc.root_causes = {"ranked": [rc.to_dict() for rc in summary.root_causes]}
    inc.details = {**(inc.details or {}), **_details(summary, window)}
    after = {
        "kind": inc.kind,
        "severity": inc.severity,
        "root_cause": summary.root_cause.node if summary.root_cause else None,
    }
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changed:
        store.add_event(s, "incident.updated", "incident", str(inc.id), changed)


def _resolve_row(
    store: Store,
    s: Session,
    inc: m.Incident,
    *,
    at: datetime | None,
    reason: str,
    by: str | None,
) -> None:
    from opsloop.store import models as m

    now = datetime.now(UTC)
    inc.status = "resolved"
    inc.resolved_at = at or now
    cancelled = []
    for act in s.scalars(
        select(m.IncidentAction).where(
            m.IncidentAction.incident_id == inc.id,
            m.IncidentAction.status.in_(("awaiting_approval", "approved")),
        )
    ):
        act.status = "cancelled"
        act.finished_at = now
        act.error = f"incident resolved: {reason}"
        cancelled.append(act.id)
        store.add_event(
            s,
            "remediation.cancelled",
            "incident",
            str(inc.id),
            {"action_id": act.id, "action": act.action, "reason": "incident resolved"},
        )
    # Alerts still firing end with the incident: if the condition persists, its next firing
    # is a new episode and opens a new incident instead of feeding a closed one.
    closed = []
    for alert in s.scalars(
        select(m.Alert).where(m.Alert.incident_id == inc.id, m.Alert.status == "firing")
    ):
        alert.status = "resolved"
        alert.ends_at = inc.resolved_at
        alert.details = {**(alert.details or {}), "ended_by": f"incident {inc.id} resolved"}
        closed.append(alert.id)
        store.add_event(
            s,
            "alert.resolved",
            "alert",
            str(alert.id),
            {"name": alert.name, "fingerprint": alert.fingerprint, "incident_id": inc.id},
        )
    details: dict[str, Any] = {"reason": reason}
    if by:
        details["by"] = by
    if cancelled:
        details["cancelled_actions"] = cancelled
    if closed:
        details["ended_alerts"] = closed
    store.add_event(s, "incident.resolved", "incident", str(inc.id), details)


# -- reading -----------------------------------------------------------------------------------


def get_incident(store: Store, incident_id: int) -> IncidentInfo:
    """One incident.

    Raises:
        NotFoundError: There is no incident with that id.
    """
    from opsloop.store import models as m

    with store.read_session() as s:
        row = s.get(m.Incident, incident_id)
        if row is None:
            raise NotFoundError(
                f"incident {incident_id} does not exist", hint="see 'opsloop incidents list'"
            )
        return IncidentInfo.from_row(row)


def list_incidents(
    store: Store,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[IncidentInfo]:
    """Incidents, newest first, filtered by status (``open``, ``resolved``) or kind."""
    from opsloop.store import models as m

    q = select(m.Incident).order_by(m.Incident.opened_at.desc(), m.Incident.id.desc())
    if status is not None:
        q = q.where(m.Incident.status == status)
    if kind is not None:
        q = q.where(m.Incident.kind == kind)
    with store.read_session() as s:
        return [IncidentInfo.from_row(r) for r in s.scalars(q.limit(limit))]


def incident_alerts(store: Store, incident_id: int) -> list[AlertInfo]:
    """The alerts of an incident, by start time."""
    from opsloop.aiops.alerts import list_alerts

    return list_alerts(store, incident_id=incident_id)


def list_actions(store: Store, incident_id: int | None = None) -> list[ActionInfo]:
    """Remediation actions (of one incident, or all), in the order they were created."""
    from opsloop.store import models as m

    q = select(m.IncidentAction).order_by(m.IncidentAction.id)
    if incident_id is not None:
        q = q.where(m.IncidentAction.incident_id == incident_id)
    with store.read_session() as s:
        return [ActionInfo.model_validate(r) for r in s.scalars(q)]


def timeline(store: Store, incident_id: int) -> list[TimelineEntry]:
    """Everything that happened to an incident, in time order: its alerts firing and ending,
    its remediation actions (each at the time its outcome became known), and its audit
    events (a remediation event names its action: ``remediation.started (retrain)``).

    Raises:
        NotFoundError: There is no incident with that id.
    """
    get_incident(store, incident_id)
    entries: list[tuple[datetime, int, int, TimelineEntry]] = []
    for a in incident_alerts(store, incident_id):
        what = f"{a.name} fired" + (f" ({a.count}x)" if a.count > 1 else "")
        info = {"labels": a.labels, "severity": a.severity, "count": a.count, "status": a.status}
        entries.append(
            (
                a.starts_at,
                0,
                a.id,
                TimelineEntry(time=a.starts_at, type="alert", what=what, ref=a.id, details=info),
            )
        )
        if a.ends_at is not None:
            entries.append(
                (
                    a.ends_at,
                    0,
                    a.id,
                    TimelineEntry(
                        time=a.ends_at,
                        type="alert",
                        what=f"{a.name} resolved",
                        ref=a.id,
                        details={"labels": a.labels},
                    ),
                )
            )
    for act in list_actions(store, incident_id):
        info = {"policy": act.policy, "status": act.status, "result": act.result}
        if act.error:
            info["error"] = act.error
        if act.approved_by:
            info["approved_by"] = act.approved_by
        # An action is placed where its outcome became known; its plan and start are events.
        at = act.finished_at or act.started_at or act.created_at
        entries.append(
            (
                at,
                1,
                act.id,
                TimelineEntry(
                    time=at,
                    type="action",
                    what=f"{act.action}: {act.status}",
                    ref=act.id,
                    details=info,
                ),
            )
        )
    for ev in store.list_events(object_type="incident", object_id=str(incident_id)):
        entries.append(
            (
                ev.time,
                2,
                ev.id,
                TimelineEntry(
                    time=ev.time,
                    type="event",
                    what=ev.kind + (f" ({ev.details['action']})" if "action" in ev.details else ""),
                    actor=ev.actor,
                    ref=ev.id,
                    details=ev.details,
                ),
            )
        )
    entries.sort(key=lambda e: (_utc(e[0]), e[1], e[2]))
    return [e[3] for e in entries]


def resolve(
    store: Store, incident_id: int, *, note: str = "", by: str | None = None
) -> IncidentInfo:
    """Mark an incident resolved; its parked remediation actions are cancelled and its alerts
    still firing end (a later firing opens a new incident).

    Raises:
        NotFoundError: There is no incident with that id.
        AIOpsError: It is already resolved.
    """
    from opsloop.store import models as m

    with store.write_session() as s:
        row = s.get(m.Incident, incident_id)
        if row is None:
            raise NotFoundError(
                f"incident {incident_id} does not exist", hint="see 'opsloop incidents list'"
            )
        if row.status == "resolved":
            raise AIOpsError(f"incident {incident_id} is already resolved")
        _resolve_row(
            store, s, row, at=None, reason=note or "resolved by hand", by=by or store.actor
        )
        s.flush()
        return IncidentInfo.from_row(row)
