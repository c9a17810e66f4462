"""Incidents in the metadata store: alerts correlated, attached, ranked, resolved.

:func:`ingest_alerts` is the one entry point for new alerts: it deduplicates them, correlates
the ones not yet in an incident with each other and with the alerts of open incidents, attaches
them to an open incident or opens a new one, and resolves incidents whose alerts have all
ended — all in one transaction, each change with its audit event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from opsloop.aiops.alerts import AlertIn, parse_alertmanager
from opsloop.aiops.correlation import (
    DEFAULT_WINDOW,
    FLAP_GRACE,
    Change,
    IncidentDraft,
    IncidentSummary,
    correlate,
    correlation_key,
    max_lag,
    neighbourhood,
    summarize_kinds,
    summarize_totals,
)
from opsloop.store.repos.incidents import alert_kind
from opsloop.store.types import ActionInfo, AlertInfo, IncidentInfo

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from opsloop.aiops.lineage import LineageGraph
    from opsloop.store import Store
    from opsloop.store.repos.incidents import AlertHead, IncidentTx

__all__ = [
    "ACTION_STATUSES",
    "DEFAULT_GRACE",
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
    "interrupted",
)
"""Every status a remediation action can have."""

PENDING_ACTION_STATUSES = ("awaiting_approval", "approved", "running")
"""Statuses of actions that have not ended; an incident with one is not auto-resolved."""


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


DEFAULT_GRACE = FLAP_GRACE
"""How long an incident whose alerts have all ended stays open: a flap in that time (the same
alert, or a related one, firing again) joins it instead of opening a new incident. It is as
long as a flap may be (:data:`~opsloop.aiops.correlation.FLAP_GRACE`); the incident is still
resolved at the end of its last alert."""

REFRESH_ALERTS = 500
"""Root causes of a large incident are ranked on its first alerts to start (a cause shows
at the start of a storm, and the ranking then costs the same for any size)."""

PROVISIONAL = timedelta(minutes=45)
"""How long an incident's alerts may still move: in a young incident (opened less than this
before the batch, of at most :data:`PROVISIONAL_ALERTS` alerts, and no remediation action on
it), alerts are correlated again with each batch, one by one, as if in no incident. A root
alert delivered late, or the next alerts of a second fault, can then take the alerts they
explain better out of the incident that took them first (an ``incident.alerts_moved`` event;
an incident left with no alert is closed as merged into the one that took most of them). The
order alerts arrive in then matters less; an older incident keeps its alerts."""

PROVISIONAL_ALERTS = 50
"""The most alerts a young incident may have for its alerts to move (a larger one is an
ongoing storm: its alerts come to correlation one of each kind, see :func:`ingest_alerts`)."""

PROVISIONAL_BUDGET = 100
"""The most alerts of young incidents a batch correlates again. More than that near one batch
is a storm: correlating them one by one would cost each batch the storm so far, and a storm's
incidents keep their alerts (they come one of each kind, as an older incident's do)."""

RERANK_FROM = 20
"""An incident of at least this many alerts is ranked again only when the alerts joining it
could change its ranking: a kind of alert new to it, an alert starting before the first of
its kind, or the incident grown by :data:`RERANK_GROWTH` since it was last ranked. Otherwise
only its count changes, so an incident growing in a storm is ranked a few times, not at every
batch."""

RERANK_GROWTH = 1.25
"""How much an incident of :data:`RERANK_FROM` alerts or more grows, with alerts of kinds it
has, before it is ranked again (the weight of a kind can shift the ranking, a little at a
time)."""


def ingest_alerts(
    store: Store,
    alerts: Sequence[AlertIn],
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    auto_resolve: bool = True,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> IngestResult:
    """Store alerts (deduplicated), correlate them into incidents, resolve what has ended.

    Alerts not yet in an incident are correlated with each other and with the recent alerts
    of their lineage neighbours (see :func:`~opsloop.aiops.correlation.neighbourhood`) that
    are in open incidents or in none. A group that reaches one open incident is attached to
    it; a group that reaches several merges them into the oldest (an incident's identity
    stays stable for the people working on it), and the incident's root causes, kind,
    severity and title are worked out again; a group that reaches none opens a new incident.
    The alerts of young incidents near the batch are correlated again with it, one by one (see
    :data:`PROVISIONAL`): those the new evidence groups with another cause move there. The
    model versions syncs put live on the deployments near the batch lately are evidence for
    ranking root causes (see :func:`~opsloop.aiops.correlation.rank_root_causes`). All of it
    is one transaction.

    Args:
        store: The metadata store.
        alerts: Incoming alerts (from rules, detectors or Alertmanager).
        graph: The lineage graph.
        window: Correlation window (see :func:`~opsloop.aiops.correlation.correlate`).
        auto_resolve: Resolve an open incident once all its alerts have ended and ``grace``
            has passed since, unless a remediation action of it is still pending.
        grace: How long a quiet incident stays open for flaps.
        now: The current time (default: the clock); quiet incidents are resolved against it.
    """
    result = IngestResult()
    at = _utc(now) if now is not None else datetime.now(UTC)
    with store.incidents.correlation() as tx:
        rows = tx.record_alerts(alerts)
        result.opened, result.updated, moved = _correlate(tx, graph, window, rows, at)
        rows = tx.alerts(r.id for r in rows)
        # (And the incidents alerts moved between, whose alerts may all have ended.)
        tx.mark_quiet({r.incident_id for r in rows if r.incident_id is not None} | moved, at)
        if auto_resolve:
            for inc_id in tx.quiet_incidents(at - grace):
                if tx.has_pending(inc_id, PENDING_ACTION_STATUSES):
                    continue
                tx.resolve(inc_id, at=tx.last_end(inc_id), reason="all alerts resolved", by=None)
                result.resolved.append(inc_id)
        # One row per alert given, as it stands at the end of the transaction.
        result.alerts = tx.alerts(r.id for r in rows) if result.resolved else rows
    return result


def _key(alert: AlertInfo, graph: LineageGraph) -> tuple[str, str | None]:
    subject, deployment = correlation_key(alert, graph)
    return subject[:512], deployment.partition(":")[2][:128] if deployment else None


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


def _correlate(
    tx: IncidentTx,
    graph: LineageGraph,
    window: timedelta,
    batch: Sequence[AlertInfo],
    at: datetime,
) -> tuple[list[int], list[int], set[int]]:
    """Correlate a batch's loose alerts (see :func:`ingest_alerts`): the incidents opened,
    those alerts joined, and those alerts moved between."""
    loose = {r.id: r for r in batch if r.incident_id is None}
    # Firing alerts left out of any incident earlier (recorded without correlation) too.
    for r in tx.loose_firing():
        loose.setdefault(r.id, r)
    if not loose:
        return [], [], set()
    keys: dict[int, tuple[str | None, str | None]] = {r.id: _key(r, graph) for r in loose.values()}
    tx.set_keys(keys)
    earliest = min(r.starts_at for r in loose.values())
    near = neighbourhood(list(loose.values()), graph)
    deployments = [n.partition(":")[2] for n in near if n.startswith("deployment:")]
    # Open incidents come one alert of each kind, weighted by how many it stands for: the
    # grouping is the same as with all their alerts, at a cost that does not grow with them.
    single, kinds = tx.neighbours(
        near,
        deployments,
        earliest - max_lag(window),
        fingerprints={r.fingerprint for r in loose.values()},
        known=loose,
    )
    context: list[tuple[AlertInfo | AlertHead, int]] = sorted(
        [(r, 1) for r in single if r.id not in loose] + [(r, w) for r, w, _ in kinds],
        key=lambda rw: rw[0].id,
    )
    # The alerts of young incidents near the batch come one by one, tied to no incident: the
    # evidence that came since they opened may group them otherwise (see PROVISIONAL).
    young = tx.young(
        {r.incident_id for r, _ in context if r.incident_id is not None},
        at - PROVISIONAL,
        PROVISIONAL_ALERTS,
    )
    if sum(young.values()) > PROVISIONAL_BUDGET:
        # A storm: every incident near it is young. Its incidents keep their alerts.
        young = {}
    youngs: list[AlertInfo] = []
    if young:
        youngs = [r for r in tx.alerts_in(young) if r.id not in loose]
        context = [(r, w) for r, w in context if r.incident_id not in young]
        kinds = [k for k in kinds if k[0].incident_id not in young]
    # An alert of each kind of an incident: what its summary is read from, below.
    heads = {what: r for r, _, what in kinds}
    pool = [r for r, _ in context] + youngs + sorted(loose.values(), key=lambda r: r.id)
    weights = [w for _, w in context] + [1] * (len(youngs) + len(loose))
    groups = [r.incident_id for r, _ in context] + [None] * (len(youngs) + len(loose))
    # An open incident's effects are timed from when it opened: its recent alerts alone would
    # let it chain on for as long as related alerts keep coming.
    onsets = tx.opened_at({g for g in groups if g})
    # What went live near the batch lately: evidence for ranking (see rank_root_causes).
    changes = (
        _rollouts(tx.rollouts(deployments, min([earliest, *onsets.values()]) - window), graph)
        if deployments
        else []
    )
    drafts = correlate(
        pool, graph, window, groups=groups, weights=weights, onsets=onsets, changes=changes
    )
    young_of = {r.id: r.incident_id for r in youngs if r.incident_id is not None}
    home = _homes(drafts, pool, young_of, groups)
    opened: list[dict[str, Any]] = []
    attached: dict[int, list[AlertInfo]] = {}
    merged: set[int] = set()
    # Alerts of young incidents that move, by the incident they leave: (alert, destination
    # incident, or the index of a draft opened below).
    moving: dict[int, list[tuple[AlertInfo, int | None, int | None]]] = {}
    for n, draft in enumerate(drafts):
        members = [pool[i] for i in draft.alert_indices]
        # (An alert standing for its kind is in an incident.)
        new = [r for r in members if isinstance(r, AlertInfo) and r.incident_id is None]
        loose_young = [r for r in members if isinstance(r, AlertInfo) and r.id in young_of]
        pinned = sorted(
            {
                r.incident_id
                for r in members
                if r.incident_id is not None and not (isinstance(r, AlertInfo) and r.id in young_of)
            }
        )
        homed = sorted(p for p, h in home.items() if h == n)
        target = pinned[0] if pinned else (homed[0] if homed else None)
        moved = [r for r in loose_young if young_of[r.id] != target]
        if not new and not moved:
            continue
        if target is not None:
            if len(pinned) > 1:
                tx.merge(
                    target,
                    pinned[1:],
                    reason="new alerts have one cause with it"
                    + (f" ({draft.summary.root_cause.node})" if draft.summary.root_cause else ""),
                )
                merged.add(target)
            if moved:
                merged.add(target)
            attached.setdefault(target, []).extend([*new, *moved])
            for r in moved:
                moving.setdefault(young_of[r.id], []).append((r, target, None))
        else:
            summary = draft.summary
            for r in moved:
                moving.setdefault(young_of[r.id], []).append((r, None, len(opened)))
            opened.append(
                {
                    "title": summary.title,
                    "kind": summary.kind,
                    "severity": summary.severity,
                    "opened_at": summary.opened_at,
                    "updated_at": summary.updated_at,
                    "root_causes": [rc.to_dict() for rc in summary.root_causes],
                    # When the store opened it: its alerts may move for a while.
                    "details": {**_details(summary, window), "received_at": at.isoformat()},
                    "alert_ids": [r.id for r in [*new, *moved]],
                    "root_cause": summary.root_cause.node if summary.root_cause else None,
                }
            )
    # The incidents alerts join, as they stood before the batch (a merge changes only the
    # incidents merged away, and an incident is in one draft at most).
    known = tx.incidents(attached)
    tx.attach_many({inc_id: [r.id for r in new] for inc_id, new in attached.items()})
    for inc_id, new in attached.items():
        tx.event(
            "incident.alerts_attached",
            "incident",
            str(inc_id),
            {"alerts": [r.id for r in new], "names": sorted({r.name for r in new})},
        )
    _refresh(tx, attached, graph, window, merged, heads, known, keys, changes)
    ids = tx.open_incidents(opened) if opened else []
    for inc_id, d in zip(ids, opened, strict=True):
        tx.event(
            "incident.opened",
            "incident",
            str(inc_id),
            {
                "title": d["title"][:512],
                "kind": d["kind"],
                "root_cause": d["root_cause"],
                "alerts": d["alert_ids"],
            },
        )
    if not moving:
        return ids, list(attached), set()
    _moved_out(tx, moving, ids, graph, window, keys, changes)
    targets = {t if t is not None else ids[k or 0] for ms in moving.values() for _, t, k in ms}
    return ids, list(attached), set(moving) | targets


def _rollouts(
    syncs: Sequence[tuple[str, datetime, Mapping[str, Any]]], graph: LineageGraph
) -> list[Change]:
    """The model versions the syncs ``(deployment, time, event details)`` put live: a new
    deployment's versions, a new main version, a version given traffic it had none of.
    A sync that failed, or changed no version (replicas, resources), put none live."""
    out: list[Change] = []
    for dep, at, details in syncs:
        if details.get("result") != "Succeeded":
            continue
        before, after = details.get("before") or {}, details.get("after") or {}
        if not isinstance(before, dict) or not isinstance(after, dict):
            continue
        live: set[str] = set()
        if "deployment" in after or "version" in after:
            live.add(str(after.get("version", details.get("version"))))
            if "deployment" in after:
                live.update(str(v) for v in _weighted_versions(details.get("traffic")))
        had = _weighted_versions(before.get("traffic")) | {str(before.get("version"))}
        live.update(_weighted_versions(after.get("traffic")) - had)
        live.discard("None")
        model = after.get("model") or details.get("model")
        served = {p for p in graph.parents(f"deployment:{dep}") if p.startswith("model:")}
        for version in sorted(live):
            node = (
                f"model:{model}/{version}"
                if isinstance(model, str)
                else next((p for p in sorted(served) if p.rpartition("/")[2] == version), None)
            )
            if node is not None:
                out.append(Change(node=node, deployment=dep, at=_utc(at)))
    return out


def _weighted_versions(traffic: object) -> set[str]:
    """The versions a traffic table (``{version: percent}``) sends requests to."""
    if not isinstance(traffic, dict):
        return set()
    return {str(v) for v, w in traffic.items() if isinstance(w, int | float) and w > 0}


def _homes(
    drafts: Sequence[IncidentDraft],
    pool: Sequence[Any],
    young_of: Mapping[int, int],
    groups: Sequence[int | None],
) -> dict[int, int]:
    """Each young incident's draft: of those holding no older incident (where it could stay
    itself), the one holding most of its alerts (the first of those)."""
    votes: dict[int, Counter[int]] = {}
    for d, draft in enumerate(drafts):
        if any(groups[i] is not None for i in draft.alert_indices):
            continue
        for i in draft.alert_indices:
            r = pool[i]
            if isinstance(r, AlertInfo) and r.id in young_of:
                votes.setdefault(young_of[r.id], Counter())[d] += 1
    return {p: min(c, key=lambda d: (-c[d], d)) for p, c in votes.items()}


def _moved_out(
    tx: IncidentTx,
    moving: Mapping[int, Sequence[tuple[AlertInfo, int | None, int | None]]],
    opened: Sequence[int],
    graph: LineageGraph,
    window: timedelta,
    keys: Mapping[int, tuple[str | None, str | None]],
    changes: Sequence[Change],
) -> None:
    """After alerts of young incidents moved (``{incident left: [(alert, incident joined or
    None, index of the incident opened for it)]}``, ``opened``: the ids of those opened): an
    event on each incident left; one left with no alert is closed as merged into the incident
    that took most of its alerts, one left with some is summed up again."""
    left = tx.count_alerts_of(moving)
    kept: dict[int, list[AlertInfo]] = {}
    for source, moves in moving.items():
        by_target: dict[int, list[int]] = {}
        for r, t, k in moves:
            dest = t if t is not None else opened[k if k is not None else 0]
            by_target.setdefault(dest, []).append(r.id)
        for target, ids in by_target.items():
            tx.event(
                "incident.alerts_moved",
                "incident",
                str(source),
                {"to": target, "alerts": ids, "reason": "later alerts showed another cause"},
            )
        if left.get(source, 0) == 0:
            into = min(by_target, key=lambda t: (-len(by_target[t]), t))
            tx.merge(into, [source], reason="its alerts have other causes")
        else:
            kept[source] = []
    if kept:
        _refresh(tx, kept, graph, window, set(kept), {}, tx.incidents(kept), keys, changes)


def _details(
    summary: IncidentSummary, window: timedelta, total: int | None = None
) -> dict[str, Any]:
    count = total if total is not None else summary.alert_count
    return {
        "alert_count": count,
        # How many alerts the incident had when its root causes were last ranked.
        "ranked_alerts": count,
        "categories": summary.categories,
        "subjects": summary.subjects,
        "deployments": summary.deployments,
        "models": summary.models,
        "window_s": window.total_seconds(),
    }


def _refresh(
    tx: IncidentTx,
    attached: Mapping[int, Sequence[AlertInfo]],
    graph: LineageGraph,
    window: timedelta,
    merged: set[int],
    heads: Mapping[tuple[Any, ...], AlertHead],
    incs: Mapping[int, IncidentInfo],
    keys: Mapping[int, tuple[str | None, str | None]],
    rollouts: Sequence[Change] = (),
) -> None:
    """Work out the summaries of incidents again from their alerts (their first
    :data:`REFRESH_ALERTS` to start, when they have more) after alerts joined them
    (``{incident id: the new alerts}``; ``merged``: the incidents others were merged into;
    ``heads``: an alert of each kind already read, by incident id and kind; ``incs``: the
    incidents as read before the batch, at least those alerts joined; a merge changes only the
    incidents merged away; ``rollouts``: model versions put live lately, see
    :func:`~opsloop.aiops.correlation.rank_root_causes`).

    When an incident's first alerts were ranked before and the new ones start after them,
    only its count changes: it is not read again. An incident of at most that many alerts is
    read as a few totals per kind, summed up in the database (see
    :func:`~opsloop.aiops.correlation.summarize_totals`); only one with a kind whose alerts
    must be told apart by their starts, and the first alerts of a larger one, are read as a
    few columns per alert (see :func:`~opsloop.aiops.correlation.summarize_kinds`). All of it
    takes a few statements.
    """
    if not attached:
        return
    totals = tx.count_alerts_of(attached)
    changes: dict[int, dict[str, Any]] = {}
    small: list[int] = []
    first_rows: dict[int, list[tuple[int, tuple[Any, ...], datetime, datetime, int]]] = {}
    for inc_id, new in attached.items():
        inc, total = incs[inc_id], totals[inc_id]
        if inc_id not in merged and _settled(inc, total, new, heads, keys):
            changes[inc_id] = _count_only(inc, total, new)
            continue
        if total <= REFRESH_ALERTS:
            small.append(inc_id)
            continue
        if inc_id not in merged and total - len(new) >= REFRESH_ALERTS:
            cutoff = tx.nth_start(inc_id, REFRESH_ALERTS)
            if cutoff is not None and all((r.starts_at, r.id) > cutoff for r in new):
                changes[inc_id] = _count_only(inc, total, new)
                continue
        first_rows[inc_id] = tx.alert_kinds(inc_id, first=REFRESH_ALERTS)
    # Summaries change (and their events are written) large incidents first, then by id.
    order = [*first_rows, *sorted(small)]
    # Small incidents are summed up from a few totals per kind (see summarize_totals); only
    # those with a kind whose alerts must be told apart are read alert by alert.
    kind_totals = tx.kind_totals(small)
    wanted: dict[tuple[Any, ...], int] = {}
    for inc_id, kinds in kind_totals.items():
        for kind, first_id, *_ in kinds:
            if (inc_id, *kind) not in heads:
                wanted.setdefault((inc_id, *kind), first_id)
    for inc_id, rows in first_rows.items():
        for alert_id, kind, _, _, _ in rows:
            if (inc_id, *kind) not in heads:
                wanted.setdefault((inc_id, *kind), alert_id)
    stored = {a.id: a for a in tx.alerts(sorted(set(wanted.values())))}
    head: dict[tuple[Any, ...], AlertInfo | AlertHead] = {
        **{k: stored[i] for k, i in wanted.items()},
        **heads,
    }
    summaries: dict[int, IncidentSummary] = {}
    for inc_id, kinds in kind_totals.items():
        got = summarize_totals(
            [
                (head[(inc_id, *kind)], (first, start, last, seen, count, n))
                for kind, first, start, last, seen, count, n in kinds
            ],
            graph,
            window=window,
            changes=rollouts,
        )
        if got is not None:
            summaries[inc_id] = got
    first_rows.update(tx.kinds_of(i for i in kind_totals if i not in summaries))
    for inc_id, rows in first_rows.items():
        members: dict[tuple[Any, ...], list[tuple[int, datetime, datetime, int]]] = {}
        for pos, (_, kind, start, seen, count) in enumerate(rows):
            members.setdefault(kind, []).append((pos, start, seen, count))
        summaries[inc_id] = summarize_kinds(
            [(head[(inc_id, *k)], ms) for k, ms in members.items()],
            graph,
            window=window,
            changes=rollouts,
        )
    for inc_id in order:
        changes[inc_id] = _changes(
            tx, incs[inc_id], summaries[inc_id], window, totals[inc_id], attached[inc_id]
        )
    tx.update_incidents(changes, {i: incs[i].details for i in changes})


def _settled(
    inc: IncidentInfo,
    total: int,
    new: Sequence[AlertInfo],
    heads: Mapping[tuple[Any, ...], AlertHead],
    keys: Mapping[int, tuple[str | None, str | None]],
) -> bool:
    """Whether ``new`` alerts joining an incident (``total`` alerts with them) leave its
    ranking as it is (see :data:`RERANK_FROM`): it is that large, it has not grown by
    :data:`RERANK_GROWTH` since it was last ranked, and each new alert is of a kind it has
    (among the recent alerts read, ``heads``) and starts no earlier than that kind's first."""
    ranked = inc.details.get("ranked_alerts")
    if total < RERANK_FROM or not isinstance(ranked, int) or total >= ranked * RERANK_GROWTH:
        return False
    for r in new:
        node, dep = keys.get(r.id, (None, None))
        head = heads.get(alert_kind(inc.id, node, dep, r.name, r.severity, r.labels))
        if head is None or r.starts_at < head.starts_at:
            return False
    return True


def _count_only(inc: IncidentInfo, total: int, new: Sequence[AlertInfo]) -> dict[str, Any]:
    """An incident's summary with only its count and last update changed."""
    return {
        "title": inc.title.rsplit(" (", 1)[0] + f" ({total} alerts)",
        "kind": inc.kind,
        "severity": inc.severity,
        "opened_at": inc.opened_at,
        "updated_at": max(inc.updated_at, *(r.last_seen_at for r in new)),
        "root_causes": inc.root_causes,
        "details": {"alert_count": total},
    }


def _changes(
    tx: IncidentTx,
    inc: IncidentInfo,
    summary: IncidentSummary,
    window: timedelta,
    total: int,
    new: Sequence[AlertInfo],
) -> dict[str, Any]:
    """An incident's new summary fields, with an ``incident.updated`` event when its kind,
    severity or first root cause change."""
    before = {"kind": inc.kind, "severity": inc.severity, "root_cause": inc.root_cause}
    after = {
        "kind": summary.kind,
        "severity": summary.severity,
        "root_cause": summary.root_cause.node if summary.root_cause else None,
    }
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changed:
        tx.event("incident.updated", "incident", str(inc.id), changed)
    return {
        "title": summary.title
        if total == summary.alert_count
        else summary.title.rsplit(" (", 1)[0] + f" ({total} alerts)",
        "kind": summary.kind,
        "severity": summary.severity,
        "opened_at": min(inc.opened_at, summary.opened_at),
        "updated_at": max(inc.updated_at, summary.updated_at, *(r.last_seen_at for r in new)),
        "root_causes": [rc.to_dict() for rc in summary.root_causes],
        "details": _details(summary, window, total),
    }


# -- reading -----------------------------------------------------------------------------------


def get_incident(store: Store, incident_id: int) -> IncidentInfo:
    """One incident.

    Raises:
        NotFoundError: There is no incident with that id.
    """
    return store.incidents.get(incident_id)


def list_incidents(
    store: Store,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[IncidentInfo]:
    """Incidents, newest first, filtered by status (``open``, ``resolved``) or kind."""
    return store.incidents.list(status=status, kind=kind, limit=limit)


def incident_alerts(store: Store, incident_id: int) -> list[AlertInfo]:
    """The alerts of an incident, by start time."""
    return store.incidents.list_alerts(incident_id=incident_id)


def list_actions(store: Store, incident_id: int | None = None) -> list[ActionInfo]:
    """Remediation actions (of one incident, or all), in the order they were created."""
    return store.incidents.list_actions(incident_id)


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
    for ev in store.events.list(object_type="incident", object_id=str(incident_id)):
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
    return store.incidents.resolve(
        incident_id, reason=note or "resolved by hand", by=by or store.actor
    )
