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

A seeded scenario simulator (:func:`simulate`) and its scoring (:func:`score_incidents`) live
here too: they measure noise reduction and root-cause accuracy in the tests and in
``benchmarks/correlation.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, get_args

import numpy as np

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.lineage import LineageGraph, split_node
from opsloop.errors import AIOpsError
from opsloop.spec.alerting import INCIDENT_KINDS, SEVERITIES, AlertCategory

__all__ = [
    "CATEGORIES",
    "DEFAULT_WINDOW",
    "INCIDENT_KINDS",
    "SUBJECT_PREFERENCE",
    "AlertLike",
    "IncidentDraft",
    "IncidentSummary",
    "RootCause",
    "Scenario",
    "Simulation",
    "categorize",
    "correlate",
    "score_incidents",
    "simulate",
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


# -- simulated scenarios -------------------------------------------------------------------------

_COLUMNS = (
    "tenure",
    "age",
    "monthly_charges",
    "total_charges",
    "contract",
    "payment_method",
    "region",
    "plan",
    "support_calls",
    "usage_gb",
    "devices",
    "discount",
    "late_payments",
    "channel",
    "income",
    "household",
)


@dataclass(frozen=True)
class Scenario:
    """One simulated problem: its kind, its true root cause and its time."""

    id: str
    kind: str
    root_cause: str
    start: datetime


@dataclass
class Simulation:
    """Seeded scenarios over a generated lineage graph, as alert notifications in time order.

    Attributes:
        graph: The lineage graph of the simulated estate.
        scenarios: The problems, in time order.
        alerts: Every notification (firing repeats and resolutions), in time order.
        truth: For each notification, the id of its scenario or ``noise-N``.
    """

    graph: LineageGraph
    scenarios: list[Scenario]
    alerts: list[AlertIn]
    truth: list[str] = field(default_factory=list)


class _World:
    """A small estate: datasets → features → model versions → deployments ← hosts."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.datasets = [f"sha256:{rng.bytes(32).hex()}" for _ in range(4)]
        self.columns = {
            d: sorted(rng.choice(_COLUMNS, size=int(rng.integers(8, 13)), replace=False).tolist())
            for d in self.datasets
        }
        self.models: dict[str, tuple[str, list[str]]] = {}
        edges: list[tuple[str, str]] = []
        for i in range(6):
            name = f"model{i}"
            dataset = self.datasets[i % len(self.datasets)]
            versions = [f"{name}/{v}" for v in range(1, int(rng.integers(2, 4)) + 1)]
            self.models[name] = (dataset, versions)
            for v in versions:
                for col in self.columns[dataset]:
                    feat = f"feature:{col}@{dataset}"
                    edges.append((f"dataset:{dataset}", feat))
                    edges.append((feat, f"model:{v}"))
        self.hosts = [f"node-{i}" for i in range(4)]
        self.deployments: dict[str, tuple[list[str], str]] = {}
        names = list(self.models)
        for i in range(8):
            model = names[i % len(names)]
            versions = self.models[model][1]
            served = versions[-2:] if rng.random() < 0.3 and len(versions) > 1 else versions[-1:]
            host = self.hosts[i % len(self.hosts)]
            dep = f"{model}-{'prod' if i < len(names) else 'eu'}"
            self.deployments[dep] = (served, host)
            for v in served:
                edges.append((f"model:{v}", f"deployment:{dep}"))
            edges.append((f"deployment:{dep}", f"host:{host}"))
        self.graph = LineageGraph(edges)

    def deployments_of_dataset(self, dataset: str) -> list[str]:
        return [
            d
            for d, (served, _) in self.deployments.items()
            if self.models[served[0].split("/")[0]][0] == dataset
        ]

    def deployments_on(self, host: str) -> list[str]:
        return [d for d, (_, h) in self.deployments.items() if h == host]


def _stream(
    name: str,
    labels: dict[str, str],
    start: datetime,
    minutes: float,
    every: float,
    severity: str,
) -> list[AlertIn]:
    """Firing notifications every ``every`` minutes for ``minutes``, then the resolution."""
    out = []
    steps = max(1, int(minutes // every))
    for k in range(steps):
        out.append(
            AlertIn(
                name=name,
                labels=labels,
                severity=severity,
                source="detector",
                starts_at=start,
                last_seen_at=start + timedelta(minutes=k * every),
            )
        )
    end = start + timedelta(minutes=steps * every)
    out.append(
        AlertIn(
            name=name,
            labels=labels,
            severity=severity,
            status="resolved",
            source="detector",
            starts_at=start,
            last_seen_at=end,
            ends_at=end,
        )
    )
    return out


def simulate(
    n_scenarios: int = 100,
    *,
    seed: int = 0,
    noise_per_scenario: float = 1.0,
    overlapping_noise: float = 0.0,
    spacing: timedelta = timedelta(hours=4),
) -> Simulation:
    """Seeded scenarios of four kinds, in turn, with unrelated noise alerts between them.

    * ``data_drift``: a dataset version drifts; feature-drift alerts on several of its columns
      at each deployment of a model trained on it, prediction drift and (often) a quality drop
      there, and sometimes a data-quality alert on the dataset itself. Root cause: the dataset.
    * ``host``: a host degrades; latency and error-rate alerts on every deployment it runs,
      sometimes a CPU alert on the host. Root cause: the host.
    * ``bad_model``: a new model version is worse; a quality drop on its deployment only.
      Root cause: the model version.
    * ``cost``: a deployment's cost spikes. Root cause: the deployment.

    Noise alerts (random names and nodes, one to three notifications) fall between scenarios,
    at least half an hour from any of them; with ``overlapping_noise`` > 0 that share of them falls
    inside scenarios instead, on nodes unrelated to the scenario.

    Args:
        n_scenarios: How many scenarios.
        seed: Seed of everything random.
        noise_per_scenario: Noise alerts per scenario on average.
        overlapping_noise: Share of noise alerts placed inside scenarios.
        spacing: Time between scenario starts.
    """
    rng = np.random.default_rng(seed)
    world = _World(rng)
    base = datetime(2025, 1, 6, tzinfo=UTC)
    kinds = ("data_drift", "host", "bad_model", "cost")
    scenarios: list[Scenario] = []
    events: list[tuple[AlertIn, str]] = []
    for s in range(n_scenarios):
        kind = kinds[s % len(kinds)]
        start = base + s * spacing + timedelta(minutes=float(rng.uniform(0, 20)))
        sid = f"s{s}-{kind}"
        make = {
            "data_drift": _drift,
            "host": _host,
            "bad_model": _bad_model,
            "cost": _cost,
        }[kind]
        root, alerts = make(world, start)
        scenarios.append(Scenario(id=sid, kind=kind, root_cause=root, start=start))
        events.extend((a, sid) for a in alerts)
    n_noise = round(noise_per_scenario * n_scenarios)
    busy = [(sc.start, sc.start + timedelta(hours=2)) for sc in scenarios]
    for k in range(n_noise):
        slot = int(rng.integers(0, n_scenarios))
        if rng.random() < overlapping_noise:
            sc = scenarios[slot]
            at = sc.start + timedelta(minutes=float(rng.uniform(0, 30)))
            alerts = _noise(world, at, avoid=sc.root_cause)
        else:
            # Between this scenario's end and the next one's start.
            at = busy[slot][1] + timedelta(minutes=float(rng.uniform(30, 75)))
            alerts = _noise(world, at, avoid=None)
        events.extend((a, f"noise-{k}") for a in alerts)
    events.sort(key=lambda e: (e[0].seen_at, e[0].status == "firing"))
    return Simulation(
        graph=world.graph,
        scenarios=scenarios,
        alerts=[a for a, _ in events],
        truth=[t for _, t in events],
    )


def _minutes(rng: np.random.Generator, low: float, high: float) -> timedelta:
    return timedelta(minutes=float(rng.uniform(low, high)))


def _drift(world: _World, start: datetime) -> tuple[str, list[AlertIn]]:
    rng = world.rng
    dataset = world.datasets[int(rng.integers(0, len(world.datasets)))]
    deployments = world.deployments_of_dataset(dataset)
    out: list[AlertIn] = []
    for n_dep, dep in enumerate(deployments):
        if n_dep > 0 and rng.random() < 0.5:
            continue
        served = world.deployments[dep][0]
        model, version = served[-1].split("/")
        cols = world.columns[dataset]
        drifted = rng.choice(
            cols, size=max(2, int(len(cols) * rng.uniform(0.3, 0.7))), replace=False
        )
        for col in drifted:
            out += _stream(
                "feature_drift",
                {"feature": str(col), "deployment": dep},
                start + _minutes(rng, 0, 10),
                float(rng.uniform(30, 90)),
                5,
                "warning",
            )
        where = {"deployment": dep, "model": model, "version": version}
        out += _stream("prediction_drift", where, start + _minutes(rng, 2, 12), 60, 5, "warning")
        if rng.random() < 0.7:
            out += _stream(
                "model_accuracy_drop", where, start + _minutes(rng, 10, 30), 60, 5, "critical"
            )
    if rng.random() < 0.5:
        out += _stream(
            "dataset_null_rate",
            {"dataset": dataset[:19]},
            start + _minutes(rng, -5, 5),
            30,
            5,
            "warning",
        )
    return f"dataset:{dataset}", out


def _host(world: _World, start: datetime) -> tuple[str, list[AlertIn]]:
    rng = world.rng
    crowded = [h for h in world.hosts if len(world.deployments_on(h)) >= 2]
    host = crowded[int(rng.integers(0, len(crowded)))]
    out: list[AlertIn] = []
    for dep in world.deployments_on(host):
        served = world.deployments[dep][0][-1]
        labels = {"deployment": dep, "model": served.split("/")[0], "version": served.split("/")[1]}
        minutes = float(rng.uniform(15, 45))
        out += _stream(
            "latency_p99_high", labels, start + _minutes(rng, 0, 5), minutes, 1, "warning"
        )
        out += _stream(
            "error_rate_high", labels, start + _minutes(rng, 1, 8), minutes, 1, "critical"
        )
    if rng.random() < 0.5:
        out += _stream(
            "node_cpu_saturation", {"host": host}, start + _minutes(rng, -2, 3), 30, 1, "warning"
        )
    return f"host:{host}", out


def _bad_model(world: _World, start: datetime) -> tuple[str, list[AlertIn]]:
    rng = world.rng
    deps = sorted(world.deployments)
    dep = deps[int(rng.integers(0, len(deps)))]
    served = world.deployments[dep][0][-1]
    model, version = served.split("/")
    labels = {"deployment": dep, "model": model}
    if rng.random() < 0.7:
        labels["version"] = version
    out = _stream("model_accuracy_drop", labels, start, float(rng.uniform(30, 90)), 5, "critical")
    return f"model:{served}", out


def _cost(world: _World, start: datetime) -> tuple[str, list[AlertIn]]:
    rng = world.rng
    deps = sorted(world.deployments)
    dep = deps[int(rng.integers(0, len(deps)))]
    out = _stream(
        "cost_per_hour_anomaly",
        {"deployment": dep},
        start,
        float(rng.uniform(45, 90)),
        15,
        "warning",
    )
    return f"deployment:{dep}", out


_NOISE_NAMES = (
    "feature_drift",
    "latency_p99_high",
    "error_rate_high",
    "model_accuracy_drop",
    "cost_per_hour_anomaly",
    "node_memory_high",
)


def _noise(world: _World, at: datetime, *, avoid: str | None) -> list[AlertIn]:
    rng = world.rng
    graph = world.graph
    for _ in range(50):
        name = _NOISE_NAMES[int(rng.integers(0, len(_NOISE_NAMES)))]
        dep = sorted(world.deployments)[int(rng.integers(0, len(world.deployments)))]
        served = world.deployments[dep][0][-1]
        labels: dict[str, str] = {"deployment": dep}
        if name == "feature_drift":
            dataset = world.models[served.split("/")[0]][0]
            cols = world.columns[dataset]
            labels["feature"] = cols[int(rng.integers(0, len(cols)))]
        elif name == "model_accuracy_drop":
            labels.update(model=served.split("/")[0], version=served.split("/")[1])
        elif name == "node_memory_high":
            labels = {"host": world.deployments[dep][1]}
        alert = AlertIn(name=name, labels=labels, starts_at=at)
        subject = subject_of(alert, graph)
        if avoid is None or (subject is not None and not graph.related(subject, avoid)):
            n = int(rng.integers(1, 4))
            return _stream(name, labels, at, n, 1, "warning")
    raise AIOpsError("the simulated estate has no node unrelated to the scenario")


def score_incidents(
    sim: Simulation,
    incident_of_alert: Mapping[str, Sequence[int]],
    top_root_cause: Mapping[int, str],
) -> dict[str, Any]:
    """Noise reduction and root-cause accuracy of an incident assignment.

    Args:
        sim: The simulation.
        incident_of_alert: For each truth id (scenario or noise), the incident of each of its
            distinct alerts (deduplicated firing episodes).
        top_root_cause: The first-ranked root cause of each incident.

    Returns:
        ``notifications``, ``alerts``, ``incidents``, ``reduction`` (incidents against
        notifications), ``alert_reduction`` (against distinct alerts),
        ``scenario_alert_reduction`` (incidents holding scenario alerts against those
        alerts, noise left out), ``root_cause_first``
        (share of scenarios whose main incident ranks the true root cause first),
        ``fragmentation`` (incidents per scenario) and ``purity`` (share of incidents whose
        alerts come from one scenario or noise alert).
    """
    notifications = sum(1 for a in sim.alerts if a.status == "firing")
    alerts = sum(len(v) for v in incident_of_alert.values())
    incidents = {i for v in incident_of_alert.values() for i in v}
    owners: dict[int, set[str]] = {}
    for truth, incs in incident_of_alert.items():
        for inc in incs:
            owners.setdefault(inc, set()).add(truth)
    scenario_ids = {sc.id for sc in sim.scenarios}
    scenario_alerts = sum(len(v) for k, v in incident_of_alert.items() if k in scenario_ids)
    scenario_incidents = {i for k, v in incident_of_alert.items() if k in scenario_ids for i in v}
    hits, frags = 0, []
    for sc in sim.scenarios:
        incs = incident_of_alert.get(sc.id, [])
        if not incs:
            continue
        main = Counter(incs).most_common(1)[0][0]
        hits += int(top_root_cause.get(main) == sc.root_cause)
        frags.append(len(set(incs)))
    n_sc = len(sim.scenarios)
    return {
        "scenarios": n_sc,
        "notifications": notifications,
        "alerts": alerts,
        "incidents": len(incidents),
        "reduction": 1 - len(incidents) / notifications if notifications else 0.0,
        "alert_reduction": 1 - len(incidents) / alerts if alerts else 0.0,
        "scenario_alert_reduction": (
            1 - len(scenario_incidents) / scenario_alerts if scenario_alerts else 0.0
        ),
        "root_cause_first": hits / n_sc if n_sc else 0.0,
        "fragmentation": float(np.mean(frags)) if frags else 0.0,
        "purity": (sum(1 for o in owners.values() if len(o) == 1) / len(owners) if owners else 0.0),
    }
