"""Alerts, incidents and remediation actions.

The rules of correlation and remediation live in :mod:`opsloop.aiops`; this module only
stores what they decide. Alerts are deduplicated here because deduplication is a property of
the stored rows: while a fingerprint is firing, a repeat of it counts on the same row.

Correlation reads and changes several incidents in one transaction: :meth:`IncidentRepository.
correlation` opens it (serialised between processes) and hands out an :class:`IncidentTx`.
"""

from __future__ import annotations

import struct
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.orm import aliased

from opsloop.errors import AIOpsError, NotFoundError, StoreError
from opsloop.store import models as m
from opsloop.store.types import ActionInfo, AlertInfo, IncidentInfo

if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from sqlalchemy.orm import Session

    from opsloop.store.db import Database

__all__ = ["SEVERITY_ORDER", "AlertHead", "AlertWrite", "IncidentRepository", "IncidentTx"]

SEVERITY_ORDER = ("info", "warning", "critical")
"""Severities, least to most severe: a repeat of a firing alert keeps the higher one."""

# Key of the transaction-scoped advisory lock that serialises correlation on PostgreSQL.
_CORRELATION_LOCK = 0x6F70736C6F6F7031

# Values bound in one IN list at most (SQLite and PostgreSQL both take far more).
_CHUNK = 500
# Nodes and deployments looked up in one statement at most; more go through alert ids.
_MAX_SCOPE = 5000


class AlertWrite(Protocol):
    """What the store needs of an incoming alert (``opsloop.aiops.AlertIn`` has it)."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def annotations(self) -> dict[str, str]: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def seen_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime | None: ...
    @property
    def details(self) -> dict[str, Any]: ...


# The columns of an incident that make its IncidentInfo.
_INCIDENT = (
    m.Incident.id,
    m.Incident.title,
    m.Incident.kind,
    m.Incident.status,
    m.Incident.severity,
    m.Incident.opened_at,
    m.Incident.updated_at,
    m.Incident.resolved_at,
    m.Incident.root_causes,
    m.Incident.details,
)


def _incident(row: Any) -> IncidentInfo:
    """An incident row (a loaded one, or the :data:`_INCIDENT` columns) as IncidentInfo."""
    return IncidentInfo(
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


def _summary_values(
    incident_id: int,
    stored_details: dict[str, Any],
    *,
    title: str,
    kind: str,
    severity: str,
    opened_at: datetime,
    updated_at: datetime,
    root_causes: builtins.list[dict[str, Any]],
    details: dict[str, Any],
) -> dict[str, Any]:
    """The columns of an incident's new summary (see :meth:`IncidentTx.update_incidents`)."""
    return {
        "id": incident_id,
        "title": title[:512],
        "kind": kind,
        "severity": severity,
        "opened_at": opened_at,
        "updated_at": updated_at,
        "root_causes": {"ranked": list(root_causes)},
        "details": {**stored_details, **details},
    }


def _max_severity(a: str, b: str) -> str:
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return a if rank.get(a, 1) >= rank.get(b, 1) else b


def _lock_fingerprints(s: Session, fingerprints: Iterable[str]) -> None:
    """Serialise concurrent writers of the same fingerprints on PostgreSQL.

    A firing row cannot be locked before it exists, so two writers could both insert one;
    a transaction-scoped advisory lock per fingerprint (taken in sorted order, so two writers
    cannot deadlock) prevents that. SQLite write transactions are already serial.
    """
    if s.get_bind().dialect.name != "postgresql":
        return
    for fp in sorted(set(fingerprints)):
        key = struct.unpack(">q", bytes.fromhex(fp[:16]))[0]
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# The labels correlation reads, each kept in a column of its own (``label_<name>``).
KIND_LABELS = ("category", "feature", "model")

# What tells alerts apart for correlation, beyond their times (see IncidentTx.neighbours).
_KIND: tuple[Any, ...] = (
    m.Alert.subject,
    m.Alert.deployment,
    m.Alert.name,
    m.Alert.severity,
    *(getattr(m.Alert, f"label_{k}") for k in KIND_LABELS),
)


def alert_kind(
    incident_id: int | None,
    subject: str | None,
    deployment: str | None,
    name: str,
    severity: str,
    labels: Mapping[str, str],
) -> tuple[Any, ...]:
    """An alert's kind as :meth:`IncidentTx.neighbours` gives it: its incident's id, then
    the values of what tells alerts apart for correlation (its lineage node and deployment,
    name, severity and :data:`KIND_LABELS`)."""
    return (incident_id, subject, deployment, name, severity, *(labels.get(k) for k in KIND_LABELS))


class AlertHead:
    """An alert standing for the alerts of its kind (see :meth:`IncidentTx.neighbours`): the
    columns correlation reads of it, with the kind's earliest start as ``starts_at``."""

    COLUMNS = (
        "id",
        "fingerprint",
        "name",
        "severity",
        "status",
        "labels",
        "last_seen_at",
        "ends_at",
        "count",
        "incident_id",
    )
    __slots__ = (*COLUMNS, "starts_at")

    id: int
    fingerprint: str
    name: str
    severity: str
    status: str
    labels: dict[str, str]
    last_seen_at: datetime
    ends_at: datetime | None
    count: int
    incident_id: int | None
    starts_at: datetime

    def __init__(self, columns: Sequence[Any], starts_at: datetime) -> None:
        """``columns``: the values of :attr:`COLUMNS`, in their order."""
        (
            self.id,
            self.fingerprint,
            self.name,
            self.severity,
            self.status,
            self.labels,
            self.last_seen_at,
            self.ends_at,
            self.count,
            self.incident_id,
        ) = columns
        self.starts_at = starts_at


# The columns of an alert that make its AlertInfo.
_INFO = tuple(getattr(m.Alert, name) for name in AlertInfo.model_fields)


def _infos(s: Session, *where: Any) -> list[AlertInfo]:
    """Alerts as AlertInfo, read as plain rows (the column types already give the values
    AlertInfo holds: no ORM object is built, nothing is validated again)."""
    names = [*AlertInfo.model_fields]
    return [
        AlertInfo.model_construct(**dict(zip(names, row, strict=True)))
        for row in s.execute(select(*_INFO).where(*where))
    ]


def _with_fingerprints(fingerprints: Iterable[str]) -> Any:
    """Alerts with one of ``fingerprints``, written so that the fingerprint index finds them
    (a planner without statistics, as SQLite's, would otherwise scan the status or incident
    index: every firing alert, or every alert of open incidents)."""
    return m.Alert.id.in_(select(m.Alert.id).where(m.Alert.fingerprint.in_(sorted(fingerprints))))


def _utc_time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class _NewAlert:
    """An alert row not yet written (see :meth:`IncidentTx.record_alerts`): its columns, which
    repeats and ends in the same batch change before the rows are written at once."""

    COLUMNS = (
        "annotations",
        "count",
        "details",
        "ends_at",
        "fingerprint",
        "label_category",
        "label_feature",
        "label_model",
        "labels",
        "last_seen_at",
        "name",
        "severity",
        "source",
        "starts_at",
        "status",
    )
    __slots__ = (*COLUMNS, "id", "incident_id")

    def __init__(self, alert: AlertWrite, fingerprint: str) -> None:
        """``fingerprint``: the alert's, worked out once by the caller."""
        self.fingerprint = fingerprint
        self.source = alert.source
        self.name = alert.name
        self.severity = alert.severity
        self.status = alert.status
        self.labels = dict(alert.labels)
        self.label_category, self.label_feature, self.label_model = (
            self.labels.get(k) for k in KIND_LABELS
        )
        self.annotations = dict(alert.annotations)
        self.starts_at = alert.starts_at
        self.last_seen_at = alert.seen_at
        self.ends_at = alert.ends_at
        self.count = 1
        self.details = dict(alert.details)
        self.id = 0
        self.incident_id: int | None = None


class IncidentTx:
    """Alert and incident changes inside one write transaction (see
    :meth:`IncidentRepository.correlation`). Reads see the transaction's own writes."""

    def __init__(self, db: Database, s: Session) -> None:
        self.db = db
        self.s = s

    def event(
        self, kind: str, object_type: str, object_id: str, details: dict[str, Any] | None = None
    ) -> None:
        """An audit event, committed with the transaction."""
        self.db.event(self.s, kind, object_type, object_id, details)

    # -- alerts ---------------------------------------------------------------------------

    def _ended(
        self,
        alerts: Sequence[AlertWrite],
        prints: Sequence[str],
        firing: Mapping[str, m.Alert | _NewAlert],
    ) -> dict[tuple[str, datetime], m.Alert | _NewAlert]:
        """Ended rows of the episodes (fingerprint and start) of ``alerts`` (whose
        fingerprints are ``prints``) that have no firing row."""
        wanted = {
            (fp, a.starts_at) for a, fp in zip(alerts, prints, strict=True) if fp not in firing
        }
        if not wanted:
            return {}
        rows = self.s.scalars(
            select(m.Alert)
            .where(
                _with_fingerprints({fp for fp, _ in wanted}),
                m.Alert.status == "resolved",
                m.Alert.starts_at.in_(sorted({at for _, at in wanted})),
            )
            .order_by(m.Alert.id)
        )
        return {(r.fingerprint, r.starts_at): r for r in rows}

    def record_alerts(self, alerts: Sequence[AlertWrite]) -> builtins.list[AlertInfo]:
        """Deduplicate and write alerts; the stored row of each alert given, in order.

        Firing: a row already firing with the same fingerprint counts the repeat (when it was
        seen later than the row's ``last_seen_at``, so replaying the same observation does not
        count twice); otherwise a new row opens, unless the episode (fingerprint and start) has
        ended already and this is a late or second copy of an earlier sighting. Resolved: the
        firing row gets ``ends_at``; with no firing row and no ended row of the episode, a
        resolved row is written so the end is not lost.
        """
        s = self.s
        # An incoming alert works its fingerprint out (a hash of its name and labels) each
        # time it is asked: it is asked once here.
        prints = [a.fingerprint for a in alerts]
        fps = set(prints)
        _lock_fingerprints(s, fps)
        firing: dict[str, m.Alert | _NewAlert] = {}
        if fps:
            rows = s.scalars(
                select(m.Alert)
                .where(_with_fingerprints(fps), m.Alert.status == "firing")
                .order_by(m.Alert.id)
            )
            for existing in rows:
                firing[existing.fingerprint] = existing
        ended = self._ended(alerts, prints, firing)
        out: builtins.list[m.Alert | _NewAlert] = []
        new: builtins.list[_NewAlert] = []
        # Events name the row's id: they are written once every new row has one.
        events: builtins.list[tuple[str, m.Alert | _NewAlert, dict[str, Any]]] = []
        for alert, fp in zip(alerts, prints, strict=True):
            row = firing.get(fp)
            done = ended.get((fp, alert.starts_at)) if row is None else None
            if done is not None and (
                alert.status != "firing" or done.ends_at is None or alert.seen_at <= done.ends_at
            ):
                # A repeat of an episode that has ended, delivered late (or twice): it neither
                # opens a new row nor fires again.
                out.append(done)
                continue
            if alert.status == "firing":
                if row is None:
                    row = _NewAlert(alert, fp)
                    new.append(row)
                    firing[fp] = row
                    events.append(
                        (
                            "alert.fired",
                            row,
                            {
                                "name": row.name,
                                "fingerprint": fp,
                                "labels": row.labels,
                                "before": None,
                                "after": {"status": "firing"},
                            },
                        )
                    )
                elif alert.seen_at > row.last_seen_at:
                    # Repeats update the row but add no event: a detector repeating every
                    # scrape would otherwise flood the audit log; count and last_seen_at
                    # carry it.
                    row.count += 1
                    row.last_seen_at = alert.seen_at
                    row.severity = _max_severity(row.severity, alert.severity)
                    if alert.annotations:
                        row.annotations = {**row.annotations, **alert.annotations}
            else:
                was: dict[str, str] | None = None
                if row is None:
                    row = _NewAlert(alert, fp)
                    new.append(row)
                else:
                    was = {"status": row.status}
                    row.status = "resolved"
                    row.ends_at = alert.ends_at or alert.seen_at
                    row.last_seen_at = max(row.last_seen_at, alert.seen_at)
                    del firing[fp]
                ended[(fp, alert.starts_at)] = row
                events.append(
                    (
                        "alert.resolved",
                        row,
                        {
                            "name": row.name,
                            "fingerprint": fp,
                            "incident_id": row.incident_id,
                            "before": was,
                            "after": {"status": "resolved"},
                        },
                    )
                )
            out.append(row)
        s.flush()
        if new:
            # One statement for the new rows (the ORM would write them one by one), their ids
            # in the order given.
            q = insert(m.Alert).returning(m.Alert.id, sort_by_parameter_order=True)
            ids = s.scalars(q, [{k: getattr(r, k) for k in _NewAlert.COLUMNS} for r in new])
            for r, alert_id in zip(new, ids, strict=True):
                r.id = int(alert_id)
        for kind, row, details in events:
            self.event(kind, "alert", str(row.id), details)
        # The rows' columns already hold the values AlertInfo holds (see _infos).
        names = [*AlertInfo.model_fields]
        return [AlertInfo.model_construct(**{n: getattr(r, n) for n in names}) for r in out]

    def alerts(self, ids: Iterable[int]) -> builtins.list[AlertInfo]:
        """Alerts by id, in the order given (ids that do not exist are left out)."""
        wanted = list(ids)
        self.s.flush()
        rows: dict[int, AlertInfo] = {}
        for k in range(0, len(wanted), _CHUNK):
            chunk = sorted(set(wanted[k : k + _CHUNK]))
            rows.update((r.id, r) for r in _infos(self.s, m.Alert.id.in_(chunk)))
        return [rows[i] for i in wanted if i in rows]

    def loose_firing(self) -> builtins.list[AlertInfo]:
        """Firing alerts that are in no incident, by id."""
        self.s.flush()
        found = _infos(self.s, m.Alert.incident_id.is_(None), m.Alert.status == "firing")
        return sorted(found, key=lambda r: r.id)

    def alert_kinds(
        self, incident_id: int, *, first: int | None = None
    ) -> builtins.list[tuple[int, tuple[Any, ...], datetime, datetime, int]]:
        """The alerts of an incident (by id; or only the ``first`` to start, by start), as
        ``(id, kind, starts_at, last_seen_at, count)``:
        ``kind`` is the node, deployment, name, severity and ``category``, ``feature`` and
        ``model`` label (alerts of one kind are alike to correlation). One statement; no alert
        is loaded."""
        q = select(m.Alert.id, *_KIND, m.Alert.starts_at, m.Alert.last_seen_at, m.Alert.count)
        q = q.where(m.Alert.incident_id == incident_id)
        if first is not None:
            q = q.order_by(m.Alert.starts_at, m.Alert.id).limit(first)
        else:
            q = q.order_by(m.Alert.id)
        return [(int(r[0]), tuple(r[1:-3]), r[-3], r[-2], int(r[-1])) for r in self.s.execute(q)]

    def set_keys(self, keys: dict[int, tuple[str | None, str | None]]) -> None:
        """Record each alert's lineage node and deployment (``{id: (subject, deployment)}``)."""
        if keys:
            self.s.flush()
            self.s.execute(
                update(m.Alert),
                [{"id": i, "subject": sub, "deployment": dep} for i, (sub, dep) in keys.items()],
            )

    def neighbours(
        self,
        subjects: Iterable[str],
        deployments: Iterable[str],
        seen_since: datetime,
        fingerprints: Iterable[str] = (),
        known: Iterable[int] = (),
    ) -> tuple[builtins.list[AlertInfo], builtins.list[tuple[AlertHead, int, tuple[Any, ...]]]]:
        """Alerts about one of ``subjects`` or labelled with one of ``deployments``, last seen at
        ``seen_since`` or later, in an open incident or in none, with those of open incidents
        one of each kind: ``(alerts, kinds)``. The lookups read an index on ``(subject,
        last_seen_at)`` or ``(deployment, last_seen_at)``: the cost follows the neighbours,
        not the table.

        ``alerts`` are, by id, the ones in no incident and the ones of open incidents that share
        a fingerprint with one of ``fingerprints`` or with an alert in no incident (a flap joins
        its earlier episode). ``kinds`` are the other alerts of open incidents, one per incident,
        node, deployment, name, severity and ``category``, ``feature`` and ``model`` label (what
        correlation reads of an alert): each the earliest alert of its kind with its earliest
        start, how many alerts it stands for and its kind (the incident id first, then what
        :meth:`alert_kinds` gives). An incident in a storm then costs its kinds, not its alerts.
        Alerts in no incident whose id is in ``known`` (the caller has them) may be left out of
        ``alerts``.
        """
        subs, deps = sorted(set(subjects)), sorted(set(deployments))
        if not subs and not deps:
            return [], []
        seen = m.Alert.last_seen_at >= seen_since
        scopes: builtins.list[Any]
        if len(subs) + len(deps) <= _MAX_SCOPE:
            scopes = [or_(m.Alert.subject.in_(subs), m.Alert.deployment.in_(deps))]
        else:
            ids: set[int] = set()
            for column, values in ((m.Alert.subject, subs), (m.Alert.deployment, deps)):
                for k in range(0, len(values), _CHUNK):
                    chunk = values[k : k + _CHUNK]
                    ids.update(self.s.scalars(select(m.Alert.id).where(column.in_(chunk), seen)))
            found = sorted(ids)
            scopes = [m.Alert.id.in_(found[k : k + _CHUNK]) for k in range(0, len(found), _CHUNK)]
        single: dict[int, AlertInfo] = {}
        loose = [m.Alert.incident_id.is_(None)]
        skip = sorted(set(known))
        if 0 < len(skip) <= _CHUNK:
            # (More would be too many parameters for one statement: they are read, then.)
            loose.append(m.Alert.id.not_in(skip))
        for scope in scopes:
            single.update((r.id, r) for r in _infos(self.s, scope, seen, *loose))
        fps = sorted(set(fingerprints) | {r.fingerprint for r in single.values()})
        is_open = m.Incident.status == "open"
        for scope in scopes:
            for k in range(0, len(fps), _CHUNK):
                hits = _infos(
                    self.s,
                    _with_fingerprints(fps[k : k + _CHUNK]),
                    scope,
                    seen,
                    m.Alert.incident_id.in_(select(m.Incident.id).where(is_open)),
                )
                single.update((r.id, r) for r in hits)
        # One row per kind: its figures, and the columns of its first alert (joined).
        key = (m.Alert.incident_id, *_KIND)
        groups: dict[tuple[Any, ...], tuple[AlertHead, int]] = {}
        head = aliased(m.Alert)
        width = len(key) + 3
        for scope in scopes:
            agg = (
                select(
                    *key,
                    func.min(m.Alert.id).label("first"),
                    func.count().label("n"),
                    func.min(m.Alert.starts_at).label("start"),
                )
                .join(m.Incident, m.Alert.incident_id == m.Incident.id)
                .where(scope, seen, is_open)
                .group_by(*key)
            )
            if fps:
                agg = agg.where(m.Alert.fingerprint.not_in(fps))
            sub = agg.subquery()
            cols = [getattr(head, n) for n in AlertHead.COLUMNS]
            q = select(*sub.c, *cols).join(head, head.id == sub.c.first)
            for cells in self.s.execute(q):
                what = cells[: len(key)]
                # The kind's earliest start stands for its first alert's own.
                got = AlertHead(cells[width:], cells[width - 1])
                n = int(cells[width - 2])
                was = groups.get(what)
                if was is not None:
                    # Another chunk of scope: the kind's first alert and start of both.
                    first = was[0] if was[0].id < got.id else got
                    start = min(was[0].starts_at, got.starts_at)
                    got = AlertHead([getattr(first, c) for c in AlertHead.COLUMNS], start)
                    n += was[1]
                groups[what] = (got, n)
        kinds = [(r, weight, what) for what, (r, weight) in groups.items()]
        alerts = [single[i] for i in sorted(single)]
        return alerts, sorted(kinds, key=lambda kn: kn[0].id)

    def rollouts(
        self, deployments: Iterable[str], since: datetime
    ) -> builtins.list[tuple[str, datetime, dict[str, Any]]]:
        """Syncs of the named deployments that succeeded at ``since`` or later, as
        ``(deployment, time, event details)`` by time: what went live on them lately (the
        ``deployment.synced`` and ``deployment.healed`` events; an index on the events'
        object finds them)."""
        names = sorted(set(deployments))
        out: builtins.list[tuple[str, datetime, dict[str, Any]]] = []
        for k in range(0, len(names), _CHUNK):
            q = select(m.Event.object_id, m.Event.time, m.Event.details).where(
                m.Event.object_type == "deployment",
                m.Event.object_id.in_(names[k : k + _CHUNK]),
                m.Event.kind.in_(("deployment.synced", "deployment.healed")),
                m.Event.time >= since,
            )
            out.extend((str(d), t, dict(det or {})) for d, t, det in self.s.execute(q))
        return sorted(out, key=lambda r: (r[1], r[0]))

    def nth_start(self, incident_id: int, n: int) -> tuple[datetime, int] | None:
        """Start and id of an incident's ``n``-th alert to start (1-based), if it has that
        many (an index on ``(incident_id, starts_at)`` reads it)."""
        q = (
            select(m.Alert.starts_at, m.Alert.id)
            .where(m.Alert.incident_id == incident_id)
            .order_by(m.Alert.starts_at, m.Alert.id)
            .offset(n - 1)
            .limit(1)
        )
        row = self.s.execute(q).first()
        return None if row is None else (row[0], int(row[1]))

    def mark_quiet(self, incident_ids: Iterable[int], default: datetime) -> None:
        """Record, for each open incident given, when its last firing alert ended (its latest
        ``ends_at``, else ``default``), or None while one of its alerts fires."""
        ids = sorted(set(incident_ids))
        if not ids:
            return
        firing = set(
            self.s.scalars(
                select(m.Alert.incident_id)
                .where(m.Alert.incident_id.in_(ids), m.Alert.status == "firing")
                .distinct()
            )
        )
        ends: dict[int, datetime | None] = {
            int(inc_id or 0): end
            for inc_id, end in self.s.execute(
                select(m.Alert.incident_id, func.max(m.Alert.ends_at))
                .where(m.Alert.incident_id.in_([i for i in ids if i not in firing]))
                .group_by(m.Alert.incident_id)
            )
        }
        changes: dict[int, datetime | None] = {}
        for i, was in self.s.execute(
            select(m.Incident.id, m.Incident.quiet_since).where(
                m.Incident.id.in_(ids), m.Incident.status == "open"
            )
        ):
            quiet = None if i in firing else (ends.get(i) or default)
            if quiet != was:
                changes[i] = quiet
        if changes:
            self.s.execute(
                update(m.Incident), [{"id": i, "quiet_since": q} for i, q in changes.items()]
            )
            self._expire_incidents(set(changes), ["quiet_since"])

    def quiet_incidents(self, before: datetime) -> builtins.list[int]:
        """Open incidents that fell quiet at ``before`` or earlier, by id."""
        q = (
            select(m.Incident.id)
            .where(m.Incident.status == "open", m.Incident.quiet_since <= before)
            .order_by(m.Incident.id)
        )
        return [int(i) for i in self.s.scalars(q)]

    def merge(self, target: int, sources: Sequence[int], *, reason: str) -> None:
        """Move the alerts and remediation actions of ``sources`` into ``target`` and close
        the sources as merged (status ``resolved``, ``details["merged_into"]``), each with an
        ``incident.merged`` event."""
        for source in sources:
            inc = self._row(source)
            moved = [
                int(i)
                for i in self.s.scalars(select(m.Alert.id).where(m.Alert.incident_id == source))
            ]
            self.s.execute(
                update(m.Alert).where(m.Alert.incident_id == source).values(incident_id=target)
            )
            self.s.execute(
                update(m.IncidentAction)
                .where(m.IncidentAction.incident_id == source)
                .values(incident_id=target)
            )
            was = inc.status
            inc.status = "resolved"
            inc.resolved_at = inc.updated_at
            inc.quiet_since = None
            inc.details = {**(inc.details or {}), "merged_into": target}
            self.event(
                "incident.merged",
                "incident",
                str(source),
                {
                    "into": target,
                    "alerts": moved,
                    "reason": reason,
                    "before": {"status": was},
                    "after": {"status": "resolved", "merged_into": target},
                },
            )
            self.event(
                "incident.merged_in", "incident", str(target), {"from": source, "alerts": moved}
            )
        self.s.flush()

    # -- incidents ------------------------------------------------------------------------

    def incident(self, incident_id: int) -> IncidentInfo | None:
        """One incident, or None."""
        row = self.s.get(m.Incident, incident_id)
        return None if row is None else _incident(row)

    def open_incident(
        self,
        *,
        title: str,
        kind: str,
        severity: str,
        opened_at: datetime,
        updated_at: datetime,
        root_causes: builtins.list[dict[str, Any]],
        details: dict[str, Any],
        alert_ids: Sequence[int],
    ) -> int:
        """Create an open incident holding ``alert_ids``; its id (see :meth:`open_incidents`)."""
        (inc_id,) = self.open_incidents(
            [
                {
                    "title": title,
                    "kind": kind,
                    "severity": severity,
                    "opened_at": opened_at,
                    "updated_at": updated_at,
                    "root_causes": root_causes,
                    "details": details,
                    "alert_ids": alert_ids,
                }
            ]
        )
        return inc_id

    def incidents(self, ids: Iterable[int]) -> dict[int, IncidentInfo]:
        """Incidents by id (ids that do not exist are left out)."""
        wanted = sorted(set(ids))
        out: dict[int, IncidentInfo] = {}
        for k in range(0, len(wanted), _CHUNK):
            q = select(*_INCIDENT).where(m.Incident.id.in_(wanted[k : k + _CHUNK]))
            out.update((r.id, _incident(r)) for r in self.s.execute(q))
        return out

    def opened_at(self, ids: Iterable[int]) -> dict[int, datetime]:
        """When each incident opened, by id (ids that do not exist are left out)."""
        wanted = sorted(set(ids))
        out: dict[int, datetime] = {}
        for k in range(0, len(wanted), _CHUNK):
            q = select(m.Incident.id, m.Incident.opened_at).where(
                m.Incident.id.in_(wanted[k : k + _CHUNK])
            )
            out.update((int(i), at) for i, at in self.s.execute(q))
        return out

    def count_alerts_of(self, ids: Iterable[int]) -> dict[int, int]:
        """How many alerts each incident holds (one statement per 500 incidents)."""
        wanted = sorted(set(ids))
        out = dict.fromkeys(wanted, 0)
        for k in range(0, len(wanted), _CHUNK):
            q = (
                select(m.Alert.incident_id, func.count())
                .where(m.Alert.incident_id.in_(wanted[k : k + _CHUNK]))
                .group_by(m.Alert.incident_id)
            )
            out.update((int(i or 0), int(n)) for i, n in self.s.execute(q))
        return out

    def kinds_of(
        self, ids: Iterable[int]
    ) -> dict[int, builtins.list[tuple[int, tuple[Any, ...], datetime, datetime, int]]]:
        """:meth:`alert_kinds` of every alert of several incidents, by incident."""
        wanted = sorted(set(ids))
        out: dict[int, builtins.list[tuple[int, tuple[Any, ...], datetime, datetime, int]]] = {
            i: [] for i in wanted
        }
        for k in range(0, len(wanted), _CHUNK):
            q = (
                select(
                    m.Alert.incident_id,
                    m.Alert.id,
                    *_KIND,
                    m.Alert.starts_at,
                    m.Alert.last_seen_at,
                    m.Alert.count,
                )
                .where(m.Alert.incident_id.in_(wanted[k : k + _CHUNK]))
                .order_by(m.Alert.incident_id, m.Alert.id)
            )
            for r in self.s.execute(q):
                out[int(r[0])].append((int(r[1]), tuple(r[2:-3]), r[-3], r[-2], int(r[-1])))
        return out

    def kind_totals(
        self, ids: Iterable[int]
    ) -> dict[
        int, builtins.list[tuple[tuple[Any, ...], int, datetime, datetime, datetime, int, int]]
    ]:
        """The alerts of several incidents summed up by kind (see :meth:`alert_kinds`), by
        incident id: ``(kind, first id, first start, last start, last seen, summed count,
        number of alerts)`` per kind. One statement per 500 incidents; no alert is read."""
        wanted = sorted(set(ids))
        out: dict[
            int, builtins.list[tuple[tuple[Any, ...], int, datetime, datetime, datetime, int, int]]
        ] = {i: [] for i in wanted}
        for k in range(0, len(wanted), _CHUNK):
            q = (
                select(
                    m.Alert.incident_id,
                    *_KIND,
                    func.min(m.Alert.id),
                    func.min(m.Alert.starts_at),
                    func.max(m.Alert.starts_at),
                    func.max(m.Alert.last_seen_at),
                    func.sum(m.Alert.count),
                    func.count(),
                )
                .where(m.Alert.incident_id.in_(wanted[k : k + _CHUNK]))
                .group_by(m.Alert.incident_id, *_KIND)
            )
            for r in self.s.execute(q):
                first, start, last, seen, count, n = r[-6:]
                out[int(r[0])].append(
                    (tuple(r[1:-6]), int(first), start, last, seen, int(count), int(n))
                )
        return out

    def update_incidents(
        self,
        changes: dict[int, dict[str, Any]],
        stored: Mapping[int, dict[str, Any]] | None = None,
    ) -> None:
        """Replace the summaries of several incidents in one statement: ``{id: {title, kind,
        severity, opened_at, updated_at, root_causes, details}}`` (``details`` are merged into
        the stored ones; ``stored``: those, by id, when the caller has read them in this
        transaction already)."""
        if not changes:
            return
        ids = sorted(changes)
        self.s.flush()
        if stored is None or not stored.keys() >= changes.keys():
            stored = self._stored_details(ids)
        self.s.execute(
            update(m.Incident),
            [
                _summary_values(inc_id, stored[inc_id], **change)
                for inc_id, change in changes.items()
            ],
        )
        self._expire_incidents(set(changes))

    def _stored_details(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        stored: dict[int, dict[str, Any]] = {}
        for k in range(0, len(ids), _CHUNK):
            q = select(m.Incident.id, m.Incident.details).where(
                m.Incident.id.in_(ids[k : k + _CHUNK])
            )
            stored.update((int(i), d or {}) for i, d in self.s.execute(q))
        return stored

    def _expire_incidents(
        self, ids: set[int], attributes: builtins.list[str] | None = None
    ) -> None:
        """After a bulk update, which bypasses the session: loaded incidents among ``ids``
        read their ``attributes`` (all by default) again."""
        for obj in [*self.s.identity_map.values()]:
            if isinstance(obj, m.Incident) and obj.id in ids:
                self.s.expire(obj, attributes)

    def attach_many(self, alerts: dict[int, Sequence[int]]) -> None:
        """Put alerts into incidents (``{incident id: alert ids}``) in one statement."""
        moved = {a: inc for inc, ids in alerts.items() for a in ids}
        if not moved:
            return
        self.s.flush()
        self.s.execute(update(m.Alert), [{"id": a, "incident_id": i} for a, i in moved.items()])
        # The statement above bypasses the session: loaded rows learn their incident.
        for obj in [*self.s.identity_map.values()]:
            if isinstance(obj, m.Alert) and obj.id in moved:
                self.s.expire(obj, ["incident_id"])

    def open_incidents(self, drafts: Sequence[dict[str, Any]]) -> builtins.list[int]:
        """Create open incidents, each holding its ``alert_ids`` (the other keys are those of
        :meth:`open_incident`); their ids, in order. A few statements, whatever their number."""
        if not drafts:
            return []
        rows = [
            {
                "title": d["title"][:512],
                "kind": d["kind"],
                "status": "open",
                "severity": d["severity"],
                "opened_at": d["opened_at"],
                "updated_at": d["updated_at"],
                "root_causes": {"ranked": list(d["root_causes"])},
                "details": dict(d["details"]),
            }
            for d in drafts
        ]
        self.s.flush()
        # One statement for the new rows (the ORM would write them one by one), their ids in
        # the order given.
        q = insert(m.Incident).returning(m.Incident.id, sort_by_parameter_order=True)
        ids = [int(i) for i in self.s.scalars(q, rows)]
        self.attach_many({i: d["alert_ids"] for i, d in zip(ids, drafts, strict=True)})
        return ids

    def young(self, ids: Iterable[int], opened_since: datetime, most: int) -> dict[int, int]:
        """Of ``ids``, the open incidents opened (``details["received_at"]``, the clock of the
        ingest that opened them) at ``opened_since`` or later, of at most ``most`` alerts, that
        no remediation action has touched (their alerts may still move to another incident,
        see :func:`~opsloop.aiops.incidents.ingest_alerts`), with how many alerts each holds."""
        wanted = sorted(set(ids))
        out: dict[int, int] = {}
        for k in range(0, len(wanted), _CHUNK):
            chunk = wanted[k : k + _CHUNK]
            acted = select(m.IncidentAction.incident_id).where(
                m.IncidentAction.incident_id.in_(chunk)
            )
            counts = (
                select(m.Alert.incident_id, func.count().label("n"))
                .where(m.Alert.incident_id.in_(chunk))
                .group_by(m.Alert.incident_id)
                .subquery()
            )
            q = (
                select(m.Incident.id, m.Incident.details, counts.c.n)
                .join(counts, counts.c.incident_id == m.Incident.id)
                .where(
                    m.Incident.id.in_(chunk),
                    m.Incident.status == "open",
                    counts.c.n <= most,
                    m.Incident.id.not_in(acted),
                )
            )
            for inc_id, details, n in self.s.execute(q):
                received = (details or {}).get("received_at")
                if isinstance(received, str) and _utc_time(received) >= opened_since:
                    out[int(inc_id)] = int(n)
        return out

    def alerts_in(self, ids: Iterable[int]) -> builtins.list[AlertInfo]:
        """The alerts of several incidents, by id."""
        wanted = sorted(set(ids))
        self.s.flush()
        out: builtins.list[AlertInfo] = []
        for k in range(0, len(wanted), _CHUNK):
            out.extend(_infos(self.s, m.Alert.incident_id.in_(wanted[k : k + _CHUNK])))
        return sorted(out, key=lambda r: r.id)

    def has_pending(self, incident_id: int, statuses: Sequence[str]) -> bool:
        """Whether a firing alert, or an action in one of ``statuses``, keeps an incident open."""
        firing = self.s.scalar(
            select(m.Alert.id)
            .where(m.Alert.incident_id == incident_id, m.Alert.status == "firing")
            .limit(1)
        )
        if firing is not None:
            return True
        pending = self.s.scalar(
            select(m.IncidentAction.id)
            .where(
                m.IncidentAction.incident_id == incident_id,
                m.IncidentAction.status.in_(list(statuses)),
            )
            .limit(1)
        )
        return pending is not None

    def last_end(self, incident_id: int) -> datetime | None:
        """When the last of an incident's alerts ended, if any did."""
        ended = self.s.scalars(
            select(m.Alert.ends_at).where(m.Alert.incident_id == incident_id)
        ).all()
        return max((e for e in ended if e is not None), default=None)

    def resolve(
        self, incident_id: int, *, at: datetime | None, reason: str, by: str | None
    ) -> IncidentInfo:
        """Mark an incident resolved: its parked actions are cancelled and its alerts still
        firing end with it, each with its event, then an ``incident.resolved`` event."""
        inc = self._row(incident_id)
        now = datetime.now(UTC)
        was = inc.status
        inc.status = "resolved"
        inc.resolved_at = at or now
        inc.quiet_since = None
        cancelled = []
        for act in self.s.scalars(
            select(m.IncidentAction).where(
                m.IncidentAction.incident_id == inc.id,
                m.IncidentAction.status.in_(("awaiting_approval", "approved")),
            )
        ):
            act_was = act.status
            act.status = "cancelled"
            act.finished_at = now
            act.error = f"incident resolved: {reason}"
            cancelled.append(act.id)
            self.event(
                "remediation.cancelled",
                "incident",
                str(inc.id),
                {
                    "action_id": act.id,
                    "action": act.action,
                    "reason": "incident resolved",
                    "before": {"status": act_was},
                    "after": {"status": "cancelled"},
                },
            )
        # Alerts still firing end with the incident: if the condition persists, its next
        # firing is a new episode and opens a new incident instead of feeding a closed one.
        closed = []
        for alert in self.s.scalars(
            select(m.Alert).where(m.Alert.incident_id == inc.id, m.Alert.status == "firing")
        ):
            alert.status = "resolved"
            alert.ends_at = inc.resolved_at
            alert.details = {**(alert.details or {}), "ended_by": f"incident {inc.id} resolved"}
            closed.append(alert.id)
            self.event(
                "alert.resolved",
                "alert",
                str(alert.id),
                {
                    "name": alert.name,
                    "fingerprint": alert.fingerprint,
                    "incident_id": inc.id,
                    "before": {"status": "firing"},
                    "after": {"status": "resolved"},
                },
            )
        details: dict[str, Any] = {
            "reason": reason,
            "before": {"status": was},
            "after": {"status": "resolved"},
        }
        if by:
            details["by"] = by
        if cancelled:
            details["cancelled_actions"] = cancelled
        if closed:
            details["ended_alerts"] = closed
        self.event("incident.resolved", "incident", str(inc.id), details)
        self.s.flush()
        return _incident(inc)

    def _row(self, incident_id: int) -> m.Incident:
        row = self.s.get(m.Incident, incident_id)
        if row is None:
            raise NotFoundError(
                f"incident {incident_id} does not exist", hint="see 'opsloop incidents list'"
            )
        return row


class IncidentRepository:
    """Alerts, incidents and their remediation actions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def correlation(self) -> Iterator[IncidentTx]:
        """One write transaction for correlating alerts into incidents, serialised between
        processes (a PostgreSQL advisory lock; SQLite write transactions are serial)."""
        with self.db.write() as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CORRELATION_LOCK})
            yield IncidentTx(self.db, s)

    # -- alerts ---------------------------------------------------------------------------

    def record_alerts(self, alerts: Sequence[AlertWrite]) -> builtins.list[AlertInfo]:
        """Deduplicate and store alerts in one transaction, without correlating them (see
        :meth:`IncidentTx.record_alerts`)."""
        with self.db.write() as s:
            return IncidentTx(self.db, s).record_alerts(alerts)

    def list_alerts(
        self,
        *,
        status: str | None = None,
        incident_id: int | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[AlertInfo]:
        """Stored alerts, oldest first, filtered by status, incident or name."""
        q = select(m.Alert).order_by(m.Alert.starts_at, m.Alert.id).limit(limit)
        if status is not None:
            q = q.where(m.Alert.status == status)
        if incident_id is not None:
            q = q.where(m.Alert.incident_id == incident_id)
        if name is not None:
            q = q.where(m.Alert.name == name)
        with self.db.read() as s:
            return [AlertInfo.model_validate(r) for r in s.scalars(q)]

    def get_alert(self, alert_id: int) -> AlertInfo:
        """One stored alert; NotFoundError if absent."""
        with self.db.read() as s:
            row = s.get(m.Alert, alert_id)
            if row is None:
                raise NotFoundError(f"alert {alert_id} does not exist")
            return AlertInfo.model_validate(row)

    # -- incidents ------------------------------------------------------------------------

    def get(self, incident_id: int) -> IncidentInfo:
        """One incident; NotFoundError if absent."""
        with self.db.read() as s:
            row = s.get(m.Incident, incident_id)
            if row is None:
                raise NotFoundError(
                    f"incident {incident_id} does not exist", hint="see 'opsloop incidents list'"
                )
            return _incident(row)

    def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[IncidentInfo]:
        """Incidents, newest first, filtered by status (``open``, ``resolved``) or kind."""
        q = select(m.Incident).order_by(m.Incident.opened_at.desc(), m.Incident.id.desc())
        if status is not None:
            q = q.where(m.Incident.status == status)
        if kind is not None:
            q = q.where(m.Incident.kind == kind)
        with self.db.read() as s:
            return [_incident(r) for r in s.scalars(q.limit(limit))]

    def count_by_status(self, *, kind: str | None = None) -> dict[str, int]:
        """How many incidents there are in each status (``open``, ``resolved``)."""
        q = select(m.Incident.status, func.count()).group_by(m.Incident.status)
        if kind is not None:
            q = q.where(m.Incident.kind == kind)
        with self.db.read() as s:
            return {str(status): int(n) for status, n in s.execute(q)}

    # -- remediation actions --------------------------------------------------------------

    def list_actions(self, incident_id: int | None = None) -> builtins.list[ActionInfo]:
        """Remediation actions (of one incident, or all), in the order they were created."""
        q = select(m.IncidentAction).order_by(m.IncidentAction.id)
        if incident_id is not None:
            q = q.where(m.IncidentAction.incident_id == incident_id)
        with self.db.read() as s:
            return [ActionInfo.model_validate(r) for r in s.scalars(q)]

    def create_action(
        self,
        incident_id: int,
        *,
        action: str,
        status: str,
        policy: str,
        created_at: datetime,
        params: dict[str, Any],
        result: dict[str, Any] | None = None,
        approved_by: str | None = None,
        started_at: datetime | None = None,
        event: str,
        event_details: dict[str, Any] | None = None,
    ) -> int:
        """Add a remediation action with its event (whose details get ``action_id`` and
        ``action``); the action's id."""
        with self.db.write() as s:
            row = m.IncidentAction(
                incident_id=incident_id,
                action=action,
                status=status,
                policy=policy,
                created_at=created_at,
                started_at=started_at,
                approved_by=approved_by,
                params=params,
                result=result or {},
            )
            s.add(row)
            s.flush()
            details = {
                "action_id": row.id,
                "action": action,
                "before": None,
                "after": {"status": status},
                **(event_details or {}),
            }
            self.db.event(s, event, "incident", str(incident_id), details)
            return int(row.id)

    def update_action(
        self,
        action_id: int,
        *,
        status: str,
        approved_by: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        event: str | None = None,
        event_details: dict[str, Any] | None = None,
    ) -> None:
        """Change an action's status (and what came with it), with an optional event whose
        details get ``action_id``, ``action``, ``policy``, ``by`` and ``error``."""
        with self.db.write() as s:
            row = s.get(m.IncidentAction, action_id)
            if row is None:
                raise StoreError(f"remediation action {action_id} does not exist")
            was = row.status
            row.status = status
            if approved_by is not None:
                row.approved_by = approved_by
            if result is not None:
                row.result = result
            if error is not None:
                row.error = error
            if started_at is not None:
                row.started_at = started_at
            if finished_at is not None:
                row.finished_at = finished_at
            if event is not None:
                details: dict[str, Any] = {
                    "action_id": row.id,
                    "action": row.action,
                    "policy": row.policy,
                    "before": {"status": was},
                    "after": {"status": status},
                }
                if approved_by is not None:
                    details["by"] = approved_by
                if error is not None:
                    details["error"] = error
                details.update(event_details or {})
                self.db.event(s, event, "incident", str(row.incident_id), details)

    def actions_started_since(
        self, policy: str, since: datetime, statuses: Sequence[str]
    ) -> builtins.list[ActionInfo]:
        """Actions of a policy in one of ``statuses`` that started at ``since`` or later."""
        q = select(m.IncidentAction).where(
            m.IncidentAction.policy == policy,
            m.IncidentAction.status.in_(list(statuses)),
            m.IncidentAction.started_at >= since,
        )
        with self.db.read() as s:
            return [ActionInfo.model_validate(r) for r in s.scalars(q)]

    def resolve(self, incident_id: int, *, reason: str, by: str | None) -> IncidentInfo:
        """Mark an open incident resolved (see :meth:`IncidentTx.resolve`).

        Raises:
            NotFoundError: There is no incident with that id.
            AIOpsError: It is already resolved.
        """
        with self.db.write() as s:
            tx = IncidentTx(self.db, s)
            current = tx.incident(incident_id)
            if current is None:
                raise NotFoundError(
                    f"incident {incident_id} does not exist", hint="see 'opsloop incidents list'"
                )
            if current.status == "resolved":
                raise AIOpsError(f"incident {incident_id} is already resolved")
            return tx.resolve(incident_id, at=None, reason=reason, by=by)
