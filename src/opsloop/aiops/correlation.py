"""Correlation of alerts into incidents, and root-cause ranking over the lineage graph.

The pure core, :func:`correlate`, takes alerts and a :class:`~opsloop.aiops.lineage.LineageGraph`
and returns incident drafts; :mod:`opsloop.aiops.incidents` stores them.

1. Each alert is mapped to the lineage node it is about (its *subject*), from its labels. Which
   label wins depends on what the alert signals: a feature-drift alert labelled with a feature
   and a deployment is about the feature; a latency alert labelled with a deployment and the
   model version it serves is about the deployment (see :data:`SUBJECT_PREFERENCE`).
2. Two alerts are linked when they are close in time (the gap between their firing intervals
   is at most ``window``) and their subjects are related in the lineage graph (one is upstream
   of the other, or they share an upstream node). Linked alerts form one incident (single
   linkage: a chain of links is enough).
3. Root-cause candidates are the subjects, ranked by how many of the incident's alerts they
   are upstream of (the most upstream anomalous node first), then by their earliest alert,
   then by their alert count and severity. When no alerting node is upstream of every alert,
   the closest common upstream nodes are added as *inferred* candidates: two deployments that
   slow down together on one host point at the host even when the host raised nothing.
4. The incident kind follows from the first root cause and its alerts: a dataset or feature
   means ``data_drift``, a host ``infrastructure``; otherwise the alerts' most common category
   (``quality_drop``, ``error_rate``, ``latency``, ``cost_anomaly`` …).

A seeded scenario simulator that measures noise reduction and root-cause accuracy lives in
:mod:`opsloop.testing.aiops_scenarios`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, get_args

from opsloop.aiops.lineage import LineageGraph, split_node
from opsloop.errors import AIOpsError
from opsloop.spec.alerting import INCIDENT_KINDS, SEVERITIES, AlertCategory

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "CATEGORIES",
    "DEFAULT_WINDOW",
    "INCIDENT_KINDS",
    "SUBJECT_PREFERENCE",
    "AlertLike",
    "IncidentDraft",
    "IncidentSummary",
    "RootCause",
    "categorize",
    "correlate",
    "subject_of",
    "summarize",
]

DEFAULT_WINDOW = timedelta(minutes=15)
"""Alerts further apart than this are never grouped."""

CATEGORIES: tuple[str, ...] = get_args(AlertCategory)
"""What an alert signals, read from its ``category`` label or its name."""

# Checked in this order, so "latency_error_budget" is latency and "prediction_drift" is drift.
_KEYWORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("cost", frozenset({"cost", "costs", "spend", "spending", "billing", "price", "budget"})),
    (
        "latency",
        frozenset({"latency", "duration", "slow", "p50", "p90", "p95", "p99", "response"}),
    ),
    (
        "error_rate",
        frozenset(
            {
                "error",
                "errors",
                "5xx",
                "fail",
                "failed",
                "failure",
                "failures",
                "exception",
                "exceptions",
                "timeout",
                "timeouts",
                "unavailable",
            }
        ),
    ),
    (
        "data_quality",
        frozenset(
            {
                "contract",
                "null",
                "nulls",
                "missing",
                "schema",
                "freshness",
                "stale",
                "completeness",
                "validity",
                "duplicates",
            }
        ),
    ),
    ("data_drift", frozenset({"drift", "psi", "ks", "jsd", "wasserstein", "shift"})),
    (
        "quality_drop",
        frozenset(
            {
                "quality",
                "accuracy",
                "auc",
                "roc",
                "f1",
                "precision",
                "recall",
                "rmse",
                "mae",
                "mape",
                "logloss",
            }
        ),
    ),
    (
        "infrastructure",
        frozenset(
            {
                "cpu",
                "memory",
                "mem",
                "disk",
                "oom",
                "node",
                "host",
                "down",
                "restart",
                "restarts",
                "crashloop",
                "crash",
                "saturation",
                "gpu",
                "unreachable",
            }
        ),
    ),
)
_TOKEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+[a-z]*|[a-z]+\d+")

SUBJECT_PREFERENCE: dict[str, tuple[str, ...]] = {
    "data_drift": ("feature", "dataset", "model", "deployment", "host"),
    "data_quality": ("dataset", "feature", "model", "deployment", "host"),
    "quality_drop": ("model", "deployment", "feature", "dataset", "host"),
    "error_rate": ("deployment", "model", "host"),
    "latency": ("deployment", "model", "host"),
    "cost": ("deployment", "model", "host", "dataset"),
    "infrastructure": ("host", "deployment"),
    "other": ("feature", "dataset", "model", "deployment", "host"),
}
"""For each category, which labelled node an alert is about, tried in order."""

# Which node kinds best explain each category, when a cause has to be inferred.
_AFFINITY: dict[str, tuple[str, ...]] = {
    "data_drift": ("dataset", "feature", "model"),
    "data_quality": ("dataset", "feature"),
    "quality_drop": ("model", "dataset", "feature"),
    "error_rate": ("host", "model", "deployment"),
    "latency": ("host", "deployment", "model"),
    "cost": ("deployment", "host"),
    "infrastructure": ("host",),
    "other": (),
}
_KIND_OF_CATEGORY = {
    "data_drift": "data_drift",
    "data_quality": "data_drift",
    "quality_drop": "quality_drop",
    "error_rate": "error_rate",
    "latency": "latency",
    "cost": "cost_anomaly",
    "infrastructure": "infrastructure",
    "other": "other",
}
# When categories are equally common, the one earlier here names the incident.
_KIND_PRIORITY = (
    "error_rate",
    "latency",
    "quality_drop",
    "data_drift",
    "cost_anomaly",
    "infrastructure",
    "other",
)
_KIND_TITLES = {
    "data_drift": "Data drift",
    "quality_drop": "Quality drop",
    "error_rate": "Error rate",
    "latency": "Latency",
    "cost_anomaly": "Cost anomaly",
    "infrastructure": "Infrastructure",
    "other": "Incident",
}
_SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}


class AlertLike(Protocol):
    """What correlation reads of an alert (stored :class:`~opsloop.aiops.alerts.AlertInfo`
    rows and incoming :class:`~opsloop.aiops.alerts.AlertIn` both fit)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def severity(self) -> str: ...

    @property
    def starts_at(self) -> datetime: ...

    @property
    def fingerprint(self) -> str: ...


def _last_seen(alert: AlertLike) -> datetime:
    seen = getattr(alert, "last_seen_at", None)
    return seen if isinstance(seen, datetime) else alert.starts_at


def _count(alert: AlertLike) -> int:
    count = getattr(alert, "count", 1)
    return count if isinstance(count, int) else 1


def categorize(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The category of an alert: its ``category`` label, else read from words of its name."""
    label = (labels or {}).get("category")
    if label in CATEGORIES:
        return label
    tokens = {t.lower() for t in _TOKEN.findall(name)}
    for category, words in _KEYWORDS:
        if not tokens.isdisjoint(words):
            return category
    return "other"


def subject_of(alert: AlertLike, graph: LineageGraph, category: str | None = None) -> str | None:
    """The lineage node an alert is about, or None when its labels name no node.

    A deployment, host or model version that the labels name but the graph does not hold yet
    (lineage lags behind alerts) is still a subject, with no edges: alerts about it then
    correlate with each other.
    """
    cat = category or categorize(alert.name, alert.labels)
    prefer = SUBJECT_PREFERENCE.get(cat, SUBJECT_PREFERENCE["other"])
    node = graph.resolve(alert.labels, prefer)
    return node if node is not None else _implicit_node(alert.labels, prefer)


def _implicit_node(labels: Mapping[str, str], prefer: Sequence[str]) -> str | None:
    for kind in prefer:
        if kind == "deployment" and labels.get("deployment"):
            return f"deployment:{labels['deployment']}"
        if kind == "host" and labels.get("host"):
            return f"host:{labels['host']}"
        if kind == "model" and labels.get("model") and labels.get("version"):
            return f"model:{labels['model']}/{labels['version']}"
    return None


@dataclass(frozen=True)
class RootCause:
    """A ranked root-cause candidate.

    Attributes:
        node: The lineage node (``kind:name``), or ``alert:NAME`` for alerts that name none.
        kind: The node kind (``dataset``, ``feature``, ``model``, ``deployment``, ``host``,
            ``alert``).
        explains: How many of the incident's alerts are about this node or nodes downstream.
        inferred: True when the node raised no alert and is a common upstream of the others.
        first_alert_at: Earliest start among the alerts it explains directly (or all it
            explains, when inferred).
        alert_count: Firing notifications counted on those alerts.
        severity: Highest severity among them.
        reason: One line for people.
    """

    node: str
    kind: str
    explains: int
    inferred: bool
    first_alert_at: datetime
    alert_count: int
    severity: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO strings)."""
        out = asdict(self)
        out["first_alert_at"] = self.first_alert_at.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RootCause:
        """Read back :meth:`to_dict`."""
        when = data["first_alert_at"]
        return cls(
            node=str(data["node"]),
            kind=str(data["kind"]),
            explains=int(data["explains"]),
            inferred=bool(data["inferred"]),
            first_alert_at=datetime.fromisoformat(when) if isinstance(when, str) else when,
            alert_count=int(data["alert_count"]),
            severity=str(data["severity"]),
            reason=str(data["reason"]),
        )


@dataclass(frozen=True)
class IncidentSummary:
    """What an incident is, derived from its alerts."""

    kind: str
    severity: str
    title: str
    opened_at: datetime
    updated_at: datetime
    root_causes: list[RootCause]
    subjects: list[str]
    categories: dict[str, int]
    deployments: list[str]
    models: list[str]
    alert_count: int

    @property
    def root_cause(self) -> RootCause | None:
        """The first-ranked root cause."""
        return self.root_causes[0] if self.root_causes else None


@dataclass(frozen=True)
class IncidentDraft:
    """A group of correlated alerts (indices into the list given to :func:`correlate`)."""

    alert_indices: list[int]
    summary: IncidentSummary


def _short(node: str) -> str:
    kind, _, name = node.partition(":")
    if kind == "feature":
        column, _, scope = name.partition("@")
        return f"feature {column}" + (f" of {_short_digest(scope)}" if scope else "")
    if kind == "dataset":
        return f"dataset {_short_digest(name)}"
    return f"{kind} {name}"


def _short_digest(value: str) -> str:
    algo, sep, digest = value.partition(":")
    return f"{algo}:{digest[:12]}" if sep and len(digest) > 12 else value


def _pseudo_node(alert: AlertLike) -> str:
    return f"alert:{alert.name}"


def rank_root_causes(
    alerts: Sequence[AlertLike],
    subjects: Sequence[str | None],
    categories: Sequence[str],
    graph: LineageGraph,
    *,
    limit: int = 5,
) -> list[RootCause]:
    """Root-cause candidates of one incident's alerts, best first (see the module docstring)."""
    by_node: dict[str, list[int]] = {}
    for i, subject in enumerate(subjects):
        by_node.setdefault(subject or _pseudo_node(alerts[i]), []).append(i)
    mapped = [i for i, s in enumerate(subjects) if s is not None]

    def explained(node: str) -> list[int]:
        if node.startswith("alert:"):
            return by_node[node]
        return [i for i in mapped if graph.is_upstream(node, subjects[i] or "")]

    candidates: list[tuple[RootCause, tuple[Any, ...]]] = []
    for node, direct in by_node.items():
        covered = explained(node)
        candidates.append((_candidate(node, covered, direct, alerts, inferred=False), (0, 0)))
    best = max((c.explains for c, _ in candidates), default=0)
    distinct = {s for s in subjects if s is not None}
    if len(distinct) > 1 and best < len(mapped):
        # No alerting node explains everything: nodes upstream of two or more alerting nodes
        # become candidates too (a host under two failing deployments, a dataset under
        # several drifting features), ranked by how much they explain like the others.
        shared = Counter(a for s in distinct for a in graph.ancestors(s))
        for node, n_subjects in sorted(shared.items()):
            if n_subjects < 2 or node in by_node:
                continue
            covered = explained(node)
            kind = split_node(node)[0]
            cats = Counter(categories[i] for i in covered)
            affinity = sum(
                n * (len(_AFFINITY[c]) - _AFFINITY[c].index(kind))
                for c, n in cats.items()
                if kind in _AFFINITY[c]
            )
            below = {subjects[i] or "" for i in covered}
            hops = sum(graph.hops(node, s) or 0 for s in below)
            rc = _candidate(node, covered, covered, alerts, inferred=True, total=len(mapped))
            candidates.append((rc, (-affinity, hops)))

    def key(item: tuple[RootCause, tuple[Any, ...]]) -> tuple[Any, ...]:
        rc, extra = item
        # An alerting node goes before an inferred one that explains as much; inferred ones
        # that explain the same alerts are told apart by affinity and distance (``extra``).
        return (
            -rc.explains,
            rc.inferred,
            rc.first_alert_at,
            -rc.alert_count,
            -_SEVERITY_RANK.get(rc.severity, 1),
            *extra,
            rc.node,
        )

    return [rc for rc, _ in sorted(candidates, key=key)][:limit]


def _candidate(
    node: str,
    covered: list[int],
    direct: list[int],
    alerts: Sequence[AlertLike],
    *,
    inferred: bool,
    total: int = 0,
) -> RootCause:
    kind = node.partition(":")[0]
    first = min(alerts[i].starts_at for i in direct)
    count = sum(_count(alerts[i]) for i in direct)
    severity = max((alerts[i].severity for i in direct), key=lambda s: _SEVERITY_RANK.get(s, 1))
    n = len(covered)
    plural = "s" if n != 1 else ""
    if inferred:
        reason = f"no alert of its own, but upstream of {n} of the {total} alerts"
    elif kind == "alert":
        reason = f"{n} alert{plural} that name no lineage node"
    else:
        reason = f"upstream of {n} alert{plural} ({len(direct)} on it)"
    return RootCause(
        node=node,
        kind=kind,
        explains=n,
        inferred=inferred,
        first_alert_at=first,
        alert_count=count,
        severity=severity,
        reason=reason,
    )


def summarize(
    alerts: Sequence[AlertLike],
    graph: LineageGraph,
    *,
    subjects: Sequence[str | None] | None = None,
    categories: Sequence[str] | None = None,
) -> IncidentSummary:
    """Kind, severity, title and ranked root causes of one group of alerts."""
    if not alerts:
        raise AIOpsError("cannot summarize an incident without alerts")
    cats = (
        list(categories)
        if categories is not None
        else [categorize(a.name, a.labels) for a in alerts]
    )
    subs = (
        list(subjects)
        if subjects is not None
        else [subject_of(a, graph, c) for a, c in zip(alerts, cats, strict=True)]
    )
    roots = rank_root_causes(alerts, subs, cats, graph)
    top = roots[0] if roots else None
    kind = _incident_kind(top, alerts, subs, cats, graph)
    severity = max((a.severity for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 1))
    deployments = sorted(
        {a.labels["deployment"] for a in alerts if a.labels.get("deployment")}
        | {s.partition(":")[2] for s in subs if s and s.startswith("deployment:")}
    )
    models = sorted(
        {a.labels["model"] for a in alerts if a.labels.get("model")}
        | {s[6:].rsplit("/", 1)[0] for s in subs if s and s.startswith("model:")}
    )
    n = len(alerts)
    where = _short(top.node) if top is not None and top.kind != "alert" else alerts[0].name
    title = f"{_KIND_TITLES[kind]}: {where} ({n} alert{'s' if n != 1 else ''})"
    return IncidentSummary(
        kind=kind,
        severity=severity,
        title=title,
        opened_at=min(a.starts_at for a in alerts),
        updated_at=max(_last_seen(a) for a in alerts),
        root_causes=roots,
        subjects=sorted({s for s in subs if s}),
        categories=dict(Counter(cats)),
        deployments=deployments,
        models=models,
        alert_count=n,
    )


def _incident_kind(
    top: RootCause | None,
    alerts: Sequence[AlertLike],
    subjects: Sequence[str | None],
    categories: Sequence[str],
    graph: LineageGraph,
) -> str:
    if top is not None and top.kind == "host":
        return "infrastructure"
    if top is not None and top.kind in ("dataset", "feature"):
        return "data_drift"
    if top is not None and top.kind != "alert":
        explained = [
            categories[i]
            for i, s in enumerate(subjects)
            if s is not None and graph.is_upstream(top.node, s)
        ]
    else:
        explained = list(categories)
    counts = Counter(_KIND_OF_CATEGORY[c] for c in explained or categories)
    return min(counts, key=lambda k: (-counts[k], _KIND_PRIORITY.index(k)))


def correlate(
    alerts: Sequence[AlertLike],
    graph: LineageGraph,
    window: timedelta = DEFAULT_WINDOW,
    *,
    groups: Sequence[Any] | None = None,
) -> list[IncidentDraft]:
    """Group alerts into incident drafts (see the module docstring).

    Args:
        alerts: The alerts, in any order.
        graph: The lineage graph.
        window: Largest gap between two alerts' firing intervals that still links them.
        groups: Optional group key per alert (e.g. an incident id); alerts with the same key
            (not None) start out in one group.

    Returns:
        One draft per group, ordered by when the group opened.
    """
    if window < timedelta(0):
        raise AIOpsError(f"correlation window must not be negative, got {window}")
    n = len(alerts)
    if groups is not None and len(groups) != n:
        raise AIOpsError(f"{n} alerts but {len(groups)} group keys")
    cats = [categorize(a.name, a.labels) for a in alerts]
    subs = [subject_of(a, graph, c) for a, c in zip(alerts, cats, strict=True)]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    if groups is not None:
        first_of: dict[Any, int] = {}
        for i, g in enumerate(groups):
            if g is not None:
                union(i, first_of.setdefault(g, i))

    related_cache: dict[tuple[str, str], bool] = {}

    def related(i: int, j: int) -> bool:
        si, sj = subs[i], subs[j]
        if si is None or sj is None:
            if si is None and sj is None:
                a, b = alerts[i], alerts[j]
                return a.fingerprint == b.fingerprint or (
                    bool(a.labels) and dict(a.labels) == dict(b.labels)
                )
            return False
        key = (si, sj) if si <= sj else (sj, si)
        hit = related_cache.get(key)
        if hit is None:
            hit = related_cache[key] = graph.related(si, sj)
        return hit

    # Sweep in start order, keeping the alerts whose interval is still within the window.
    order = sorted(range(n), key=lambda i: (alerts[i].starts_at, i))
    active: list[int] = []
    for i in order:
        start = alerts[i].starts_at
        active = [j for j in active if _last_seen(alerts[j]) + window >= start]
        for j in active:
            if find(i) != find(j) and related(i, j):
                union(i, j)
        active.append(i)

    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(find(i), []).append(i)
    drafts = []
    for idx in members.values():
        summary = summarize(
            [alerts[i] for i in idx],
            graph,
            subjects=[subs[i] for i in idx],
            categories=[cats[i] for i in idx],
        )
        drafts.append(IncidentDraft(alert_indices=idx, summary=summary))
    drafts.sort(key=lambda d: (d.summary.opened_at, d.alert_indices[0]))
    return drafts
