"""Correlation of alerts into incidents, and root-cause ranking over the lineage graph.

The pure core, :func:`correlate`, takes alerts and a :class:`~opsloop.aiops.lineage.LineageGraph`
and returns incident drafts; :mod:`opsloop.aiops.incidents` stores them.

1. Each alert is mapped to the lineage node it is about (its *subject*), from its labels. Which
   label wins depends on what the alert signals: a feature-drift alert labelled with a feature
   and a deployment is about the feature; a latency alert labelled with a deployment and the
   model version it serves is about the deployment (see :data:`SUBJECT_PREFERENCE`).
2. How well a node explains an alert (its *fit*, 0 to 1) follows from what the alert signals
   (a host slows its deployments down but does not make a model's accuracy drop), from how far
   upstream the node is (at most :data:`MAX_HOPS`, each hop discounting) and from timing (an
   effect starts within the window after its cause's onset, drift and quality drops later;
   alerts that started before the node's own first alert count less). A node explains an
   alert at all only with a fit of at least :data:`MIN_FIT`: a weak link is no evidence.
   One path runs against lineage: a busy deployment slows the other deployments on its hosts
   and drives the hosts' CPU, so it explains their latency and CPU alerts, less well than the
   host would and only once its own trouble has shown (tenants slowing down together point
   at their host). A deployment whose autoscaler is at its limit (``KubeHpaMaxedOut``) says
   its demand is more than it can scale to: a host does not explain that alert, and the
   deployment explains its hosts' CPU and its neighbours' latency as well as the host would.
   Nor does a host explain a deployment's stuck rollout or containers waiting to start (its
   spec's failures), or a container killed at its memory limit unless the host reports its
   memory short. A host that reports itself failing (not ready, short of memory, disk, CPU
   or network) explains its tenants' trouble better than their other hosts that raised
   nothing: those are not inferred from it (a deployment on two hosts does not chain its
   trouble to another deployment through the silent one).
3. Grouping is evidence-based, not linkage: causes are chosen greedily by how much better they
   explain their alerts than the alerts stand alone (:data:`ALONE_FIT` each), less a cost that
   is higher for a node with no alert of its own, and each alert goes to the cause that
   explains it best. A group is therefore always what one cause explains: nothing is chained
   through a node that never alerted, and two faults whose symptoms are lineage-related stay
   apart unless one cause explains both better. Three rules keep the evidence honest:

   * an effect later than the window after its cause's onset (a quality drop as labels arrive)
     joins only when an earlier alert of the group is on its path (its node or deployment):
     a late quality drop on a deployment that showed nothing of the drift is news;
   * the same alert firing again after a quiet spell longer than :data:`FLAP_GRACE` may join
     the cause that holds it but is no further evidence for it (a chronic alert does not make
     an incident of its own repeats); within the grace it is a flap of the same episode;
   * a group given with an onset (a store's open incident, of which only the recent alerts are
     read) times its effects from that onset, so an incident cannot chain on for as long as
     related alerts keep coming.

   Root-cause candidates of a group are the nodes that explain its alerts, ranked by the same
   score (how well they explain all of them, less the cost), then by their earliest alert,
   alert count and severity. A node that never alerted (a host under two slow deployments, a
   dataset under three drifting columns) is a candidate only for alerts it typically causes,
   and pays a higher cost than one with alerts of its own. One alert is a verdict rather than
   a symptom: a progressive rollout's failed analysis (``CanaryAnalysisFailed``) compares the
   canary with the stable deployment on the same traffic, so the version the canary rolls out
   is ranked first, whatever the canary's own symptoms point at.
4. The incident kind follows from the first root cause and its alerts: a dataset or feature
   means ``data_drift``, a host ``infrastructure``; otherwise the alerts' most common category
   (``quality_drop``, ``error_rate``, ``latency``, ``cost_anomaly`` …).

A seeded scenario simulator that measures noise reduction and root-cause accuracy lives in
:mod:`opsloop.testing.aiops_scenarios`.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, lru_cache, partial
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Protocol, get_args

from opsloop.errors import AIOpsError
from opsloop.spec.alerting import INCIDENT_KINDS, SEVERITIES, AlertCategory

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from opsloop.aiops.lineage import LineageGraph

__all__ = [
    "CATEGORIES",
    "DEFAULT_WINDOW",
    "FLAP_GRACE",
    "INCIDENT_KINDS",
    "SUBJECT_PREFERENCE",
    "AlertLike",
    "Change",
    "IncidentDraft",
    "IncidentSummary",
    "RootCause",
    "categorize",
    "correlate",
    "correlation_key",
    "max_lag",
    "neighbourhood",
    "rank_root_causes",
    "subject_of",
    "summarize",
    "summarize_kinds",
    "summarize_totals",
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
                # A model's performance is its quality in model monitoring's words (speed is
                # latency, checked first).
                "performance",
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
                # Kubernetes' own alerts about pods, autoscalers and CPU limits.
                "kube",
                "pod",
                "pods",
                "hpa",
                "throttling",
            }
        ),
    ),
)
_TOKEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+[a-z]*|[a-z]+\d+")

SUBJECT_PREFERENCE: dict[str, tuple[str, ...]] = {
    "data_drift": ("feature", "dataset", "model", "deployment", "host"),
    "data_quality": ("feature", "dataset", "model", "deployment", "host"),
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


# Labels that name where a model serves (a deployment, a model version, a host or node).
_SERVING_LABELS = ("deployment", "model", "model_version", "host", "node", "instance")
# Categories read from a name that only serving can signal: an alert named so but labelled with
# data alone (a dataset or a feature, no serving label) is a data job's failure or slowness.
_SERVING_CATEGORIES = frozenset({"error_rate", "latency", "infrastructure", "other"})


def categorize(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The category of an alert: its ``category`` label, else read from words of its name.

    An alert whose labels name a dataset or a feature and nothing that serves
    (``feature_materialization_failed``, ``source_freshness_error`` on a dataset) is about
    data: ``data_quality``, whatever serving word its name holds.
    """
    labels = labels or {}
    label = labels.get("category")
    if label in CATEGORIES:
        return label
    category = _category_of_name(name)
    if (
        category in _SERVING_CATEGORIES
        and (labels.get("dataset") or labels.get("feature"))
        and not any(labels.get(k) for k in _SERVING_LABELS)
    ):
        return "data_quality"
    return category


_LOAD_WORDS = frozenset({"cpu", "load", "saturation", "saturated"})


@lru_cache(maxsize=4096)
def _words(name: str) -> frozenset[str]:
    """The words of an alert's name, lower case (``NodeCPUHighUsage``: node, cpu, high, usage)."""
    return frozenset(t.lower() for t in _TOKEN.findall(name))


def _is_load(name: str) -> bool:
    """Whether an alert's name speaks of CPU load (what a busy tenant does to its host)."""
    return not _LOAD_WORDS.isdisjoint(_words(name))


@lru_cache(maxsize=4096)
def _category_of_name(name: str) -> str:
    tokens = _words(name)
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
    node = graph.resolve(alert.labels, prefer) or _implicit_node(alert.labels, prefer)
    if node is None and prefer != SUBJECT_PREFERENCE["other"]:
        # The labels name a node of a kind the category does not prefer (a failed job on a
        # feature): the alert is still about that node, not about no node at all.
        other = SUBJECT_PREFERENCE["other"]
        node = graph.resolve(alert.labels, other) or _implicit_node(alert.labels, other)
    return node


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
        score: How well it explains the incident's alerts, less its cost (higher is better).
    """

    node: str
    kind: str
    explains: int
    inferred: bool
    first_alert_at: datetime
    alert_count: int
    severity: str
    reason: str
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO strings)."""
        return {
            "node": self.node,
            "kind": self.kind,
            "explains": self.explains,
            "inferred": self.inferred,
            "first_alert_at": self.first_alert_at.isoformat(),
            "alert_count": self.alert_count,
            "severity": self.severity,
            "reason": self.reason,
            "score": self.score,
        }

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
            score=float(data.get("score", 0.0)),
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
    """A group of correlated alerts (indices into the list given to :func:`correlate`).

    Its :attr:`summary` is worked out on first use: the store reads it only for the groups
    that open an incident.
    """

    alert_indices: list[int]
    make_summary: Callable[[], IncidentSummary] = field(repr=False, compare=False)

    @cached_property
    def summary(self) -> IncidentSummary:
        """Kind, severity, title and ranked root causes of the group."""
        return self.make_summary()


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
    """The stand-in node of an alert whose labels name no lineage node: alerts with the same
    labels (or, with none, the same fingerprint) share it."""
    if alert.labels:
        return "alert:" + ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return f"alert:{alert.name}#{alert.fingerprint[:12]}"


# -- evidence -------------------------------------------------------------------------------
#
# How well a node explains an alert ("fit", 0..1) is the product of three things:
# * semantics: which node kinds can cause which alert categories (a host slows its deployments
#   down but does not make a model's accuracy drop), see _CAUSE_AFFINITY;
# * topology: the alert's own node explains it fully; an upstream node within MAX_HOPS explains
#   it less the further away it is (each hop multiplies by HOP_DECAY), and an
#   alert on a model served by a deployment is also about that deployment (its labels say so);
# * timing: a cause comes first. Alerts whose start lies before the candidate's own first alert
#   count less (EARLY_FACTOR), and an alert only fits a cause whose onset it follows within
#   the window (longer for quality drops, whose labels arrive late: QUALITY_LAG).
# Grouping then picks causes greedily by how much better they explain the alerts than the causes
# picked before, minus a cost per cause that is higher for a node with no alert of its own
# (the greedy algorithm for uncapacitated facility location; chosen over linkage clustering
# because a group is then always what one cause explains: no chaining of unrelated alerts
# through a shared upstream node).

MAX_HOPS = 3
"""How far upstream of an alert's node a cause may be (dataset → feature → model → deployment)."""
HOP_DECAY = 0.85
OWN_COST = 1.0
INFERRED_COST = 1.1
"""The cost of blaming a node with no alert of its own: above :data:`OWN_COST`, yet low enough
that two deployments slowing down together (each explained with fit 0.85, one hop) are enough
to blame their silent host: ``2 * (0.85 - ALONE_FIT) > INFERRED_COST``."""
INFERRED_FIT = 1.0
STRONG = 0.8
"""A node with no alert of its own explains only alerts it is a typical cause of (a host the
latency of its deployments, not their accuracy; a model the accuracy of its deployments, not
their latency): affinity at least this."""
EARLY_FACTOR = 0.5
EARLY_SLACK = timedelta(minutes=3)
QUALITY_LAG = timedelta(minutes=90)
DRIFT_LAG = timedelta(minutes=15)
ALONE_FIT = 0.25
"""What an alert left on its own is worth: a cause takes an alert only by explaining it better
than that, and is chosen only when it explains its alerts better than they stand alone, by
more than its cost."""
MIN_FIT = 0.35
"""The weakest fit with which a cause counts an alert at all (a weak link is no evidence)."""
FLAP_GRACE = timedelta(minutes=30)
"""A firing that follows the end of the same alert within this is a flap of it, not news: the
condition behind an alert that fires for minutes and clears for a quarter of an hour, all day,
is one problem, and paging for each firing is the alert fatigue correlation is there to end."""

_CAUSE_AFFINITY: dict[str, dict[str, float]] = {
    "data_drift": {"feature": 1.0, "dataset": 1.0, "model": 0.8, "deployment": 0.5},
    # An alert on an input column (it has a ``feature`` label) has its cause in the data.
    "feature": {"feature": 1.0, "dataset": 1.0},
    "data_quality": {"dataset": 1.0, "feature": 1.0},
    "quality_drop": {"model": 1.0, "dataset": 0.9, "feature": 0.9, "deployment": 0.7},
    "error_rate": {"host": 1.0, "deployment": 1.0, "model": 0.6},
    "latency": {"host": 1.0, "deployment": 1.0, "model": 0.3},
    # A retrain storm (a model version's training cost) drives the serving cost of the
    # deployments that canary and serve it: a model is a typical cause of their cost alerts.
    "cost": {"deployment": 1.0, "model": 0.9, "host": 0.6},
    "infrastructure": {"host": 1.0, "deployment": 0.6},
    "other": {"dataset": 0.7, "feature": 0.7, "model": 0.7, "deployment": 0.7, "host": 0.7},
}
# Kinds that may be blamed without an alert of their own (a feature never is: its dataset is).
_INFERABLE = frozenset({"dataset", "model", "host"})


def _lag(category: str, window: timedelta) -> timedelta:
    if category == "quality_drop":
        return window + QUALITY_LAG
    if category == "data_drift":
        return window + DRIFT_LAG
    return window


@dataclass(frozen=True)
class _Fit:
    """The causes an alert could have, how well each explains it, which of them it is a
    typical effect of (``strong``), the nodes it is on (``owns``), and its path: those, its
    node and its deployment (``paths``); the causes that reach it against lineage (``lagged``:
    a busy neighbour, whose effect takes time to show)."""

    fits: dict[str, float]
    strong: frozenset[str]
    owns: frozenset[str]
    paths: frozenset[str]
    lagged: frozenset[str] = frozenset()


class _Evidence:
    """The causes each alert could have, with how well each explains it (before timing)."""

    def __init__(
        self,
        alerts: Sequence[AlertLike],
        subjects: Sequence[str | None],
        categories: Sequence[str],
        graph: LineageGraph,
    ) -> None:
        self.alerts = alerts
        self.categories = categories
        self.graph = graph
        self.nodes = [s or _pseudo_node(a) for a, s in zip(alerts, subjects, strict=True)]
        # What an alert's node, category and labels imply depends on the graph alone: it is
        # worked out once per graph (the graph forgets it when it changes).
        self._up: dict[str, dict[str, int]] = graph.memo("correlation.upstream")
        known: dict[tuple[str, str, str | None, str | None, bool], _Fit] = graph.memo(
            "correlation.fits"
        )
        self.owns: list[frozenset[str]] = []
        self.strong: list[frozenset[str]] = []
        # Shared with the memo: read, never changed.
        self.fits: list[dict[str, float]] = []
        self.paths: list[frozenset[str]] = []
        self.lagged: list[frozenset[str]] = []
        for i, a in enumerate(alerts):
            # A host's alert of CPU load also has the host's deployments as causes.
            load = self.nodes[i].startswith("host:") and _is_load(a.name)
            key = (
                self.nodes[i],
                categories[i],
                a.labels.get("feature"),
                a.labels.get("deployment"),
                load,
            )
            hit = known.get(key)
            if hit is None:
                hit = known[key] = self._fits(i, load)
            self.fits.append(hit.fits)
            self.strong.append(hit.strong)
            self.owns.append(hit.owns)
            self.paths.append(hit.paths)
            self.lagged.append(hit.lagged)

    def _upstream(self, node: str) -> dict[str, int]:
        """Nodes within MAX_HOPS upstream of ``node``, with their distance."""
        hit = self._up.get(node)
        if hit is None:
            # A feature and its dataset version are two views of the same data: the step
            # between them costs no hop (a dataset explains its model as well as a column).
            hit = {}
            queue = deque([(node, 0)])
            while queue:
                n, depth = queue.popleft()
                for p in self.graph.parents(n):
                    step = 0 if n.startswith("feature:") and p.startswith("dataset:") else 1
                    if p != node and depth + step <= MAX_HOPS and depth + step < hit.get(p, 99):
                        hit[p] = max(1, depth + step)
                        queue.append((p, depth + step))
            self._up[node] = hit
        return hit

    def _fits(self, i: int, load: bool) -> _Fit:
        node = self.nodes[i]
        out = {node: 1.0}
        strong: set[str] = set()
        owns = frozenset({node})
        labels = self.alerts[i].labels
        if node.startswith("alert:"):
            return _Fit(
                out, frozenset(strong), owns, _path_keys(node, owns, labels.get("deployment"))
            )
        column = labels.get("feature")
        anchors = {node: 0}
        if column:
            affinity = _CAUSE_AFFINITY["feature"]
        else:
            affinity = _CAUSE_AFFINITY.get(self.categories[i], _CAUSE_AFFINITY["other"])
            dep = labels.get("deployment")
            if dep and not node.startswith(("deployment:", "host:")):
                anchors[f"deployment:{dep}"] = 1
        for anchor, base in anchors.items():
            if anchor != node:
                weight = affinity.get("deployment", 0.0)
                if weight > 0:
                    out[anchor] = max(out.get(anchor, 0.0), weight)
            for up, hops in self._upstream(anchor).items():
                weight = affinity.get(up.partition(":")[0], 0.0)
                if weight <= 0:
                    continue
                fit = weight * HOP_DECAY ** (hops + base)
                if fit > out.get(up, 0.0):
                    out[up] = fit
                    if weight >= STRONG:
                        strong.add(up)
        if column and not node.startswith("feature:"):
            # The labels did not say which dataset version's column it is (a canary serving
            # versions trained on two): it is on each of them.
            matching = [
                up
                for up in self._upstream(node)
                if up.startswith("feature:") and up[8:].split("@", 1)[0] == column
            ]
            for up in matching:
                out[up] = 1.0
                strong.add(up)
            if matching:
                out[node] = 0.5
                owns = frozenset(matching)
        lagged = self._neighbour_fits(node, self.categories[i], load, out)
        paths = _path_keys(node, owns, labels.get("deployment"))
        return _Fit(out, frozenset(strong), owns, paths, lagged)

    def _neighbour_fits(
        self, node: str, category: str, load: bool, out: dict[str, float]
    ) -> frozenset[str]:
        """A deployment's load is the load of the hosts it runs on: a surge of its traffic
        slows the other deployments there (their latency) and drives the hosts' CPU (their
        CPU alerts, not their memory or disks). Lineage runs from a host to its deployments
        only, so these are paths against it: each explains less than the host would, and only
        what follows the busy deployment's own first alert (see :func:`_facility`). ``load``
        says the alert is a host's CPU alert. Adds them to ``out`` and returns them."""
        graph = self.graph
        added: dict[str, float] = {}
        if category == "latency" and node.startswith("deployment:"):
            fit = _CAUSE_AFFINITY["latency"]["deployment"] * HOP_DECAY**2
            for host in graph.parents(node):
                if host.startswith("host:"):
                    for other in graph.children(host):
                        if other != node and other.startswith("deployment:"):
                            added[other] = fit
        elif load:
            fit = _CAUSE_AFFINITY["infrastructure"]["deployment"] * HOP_DECAY
            for dep in graph.children(node):
                if dep.startswith("deployment:"):
                    added[dep] = fit
        # A node that lineage already lets explain the alert keeps that path.
        lagged = frozenset(n for n in added if n not in out)
        for n in lagged:
            out[n] = added[n]
        return lagged


@dataclass
class _Unit:
    """Alerts that go together whatever happens (one alert and its flaps, or the alerts of
    one stored incident)."""

    members: list[int]
    start: datetime
    lag: timedelta
    own: frozenset[str]
    fits: dict[str, float]
    strong: frozenset[str]
    firsts: dict[str, datetime]
    weight: int = 1
    paths: frozenset[str] = frozenset()
    prints: frozenset[str] = frozenset()
    lagged: frozenset[str] = frozenset()


def _path_keys(node: str, owns: frozenset[str], dep: str | None) -> frozenset[str]:
    keys = {node, *owns}
    if dep:
        keys.add(f"deployment:{dep}")
    return frozenset(keys)


def _units(
    ev: _Evidence,
    parts: Sequence[Sequence[int]],
    window: timedelta,
    weights: Sequence[int] | None = None,
    onsets: Sequence[datetime | None] | None = None,
) -> list[_Unit]:
    out = []
    for members in parts:
        # Most units are one alert (every unit of a ranking is); a unit of several is theirs
        # joined.
        singles = [_single_unit(ev, i, window, weights, onsets) for i in members]
        out.append(singles[0] if len(singles) == 1 else _joined(singles))
    return out


def _joined(units: Sequence[_Unit]) -> _Unit:
    """One unit of the alerts of several (alerts that go together whatever the evidence):
    their fits and weights summed, each node's first start and the widest lag."""
    fits: dict[str, float] = {}
    firsts: dict[str, datetime] = {}
    for unit in units:
        for node, fit in unit.fits.items():
            fits[node] = fits.get(node, 0.0) + fit
        for node, t in unit.firsts.items():
            if node not in firsts or t < firsts[node]:
                firsts[node] = t
    return _Unit(
        members=[i for unit in units for i in unit.members],
        start=min(unit.start for unit in units),
        lag=max(unit.lag for unit in units),
        own=frozenset(n for unit in units for n in unit.own),
        fits=fits,
        strong=frozenset(n for unit in units for n in unit.strong),
        firsts=firsts,
        weight=sum(unit.weight for unit in units),
        paths=frozenset(k for unit in units for k in unit.paths),
        prints=frozenset(p for unit in units for p in unit.prints),
        lagged=frozenset(n for unit in units for n in unit.lagged),
    )


def _single_unit(
    ev: _Evidence,
    i: int,
    window: timedelta,
    weights: Sequence[int] | None,
    onsets: Sequence[datetime | None] | None,
) -> _Unit:
    """The unit of the one alert ``i`` (its fits weighted, its start no later than its
    group's onset)."""
    alert = ev.alerts[i]
    start = alert.starts_at
    if onsets is not None and (t := onsets[i]) is not None:
        start = min(start, t)
    w = 1 if weights is None else weights[i]
    return _Unit(
        members=[i],
        start=start,
        lag=_lag(ev.categories[i], window),
        own=ev.owns[i],
        fits={node: fit * w for node, fit in ev.fits[i].items()},
        strong=ev.strong[i],
        firsts=dict.fromkeys(ev.owns[i], alert.starts_at),
        weight=w,
        paths=ev.paths[i],
        prints=frozenset((alert.fingerprint,)),
        lagged=ev.lagged[i],
    )


@dataclass
class _Facility:
    node: str
    anchor: datetime
    cover: list[tuple[int, float]]
    cost: float
    echoes: set[int] = field(default_factory=set)

    def gain(self, best: Sequence[float]) -> float:
        """How much better it explains its alerts than ``best`` does, less its cost."""
        return sum(max(0.0, f - best[u]) for u, f in self.cover if u not in self.echoes) - self.cost


def _facility(
    node: str,
    anchor: datetime,
    units: Sequence[_Unit],
    candidates: Sequence[int],
    *,
    bounded: bool = True,
    late: timedelta | None = None,
) -> _Facility:
    """A cause at a time, with what it would explain: the units that start within their lag
    after ``anchor`` (any time after it, unless ``bounded``), each with how well (timing
    included). With ``late``, ``candidates`` come by start."""
    covered = [
        u
        for u in candidates
        if anchor <= (start := units[u].start) and (not bounded or start <= anchor + units[u].lag)
    ]
    if late is not None:
        covered = _on_path(covered, units, anchor + late)
    own_starts = [units[u].firsts[node] for u in covered if node in units[u].own]
    onset = min(own_starts, default=anchor)
    inferred = not own_starts
    early = onset - EARLY_SLACK
    factor = INFERRED_FIT if inferred else 1.0
    cover = []
    prints: set[str] = set()
    echoes: set[int] = set()
    for u in covered:
        unit = units[u]
        if inferred and node not in unit.strong:
            continue
        fit = unit.fits[node] * factor
        if unit.start < early and node not in unit.own:
            fit *= EARLY_FACTOR
        elif node in unit.lagged and unit.start < onset + EARLY_SLACK:
            # A busy neighbour slows the others only once its own trouble has shown: tenants
            # slowing down together point at their host.
            fit *= EARLY_FACTOR
        if fit < MIN_FIT * unit.weight:
            continue
        if bounded and unit.prints <= prints:
            # The same alerts firing again after a quiet spell longer than FLAP_GRACE may
            # join the cause that holds them, but are no further evidence for it.
            echoes.add(u)
        prints.update(unit.prints)
        cover.append((u, fit))
    return _Facility(node, anchor, cover, INFERRED_COST if inferred else OWN_COST, echoes)


def _on_path(covered: Sequence[int], units: Sequence[_Unit], after: datetime) -> list[int]:
    """``covered`` (by start) less the units starting after ``after`` that follow no earlier
    covered unit on their path: their node or deployment, or a node upstream that could cause
    them when that unit's alert is tied to no deployment (a late prediction drift follows a
    broken feature's own alert; drift seen on one deployment says nothing of another's)."""
    # ``covered`` already comes by start (see _facility): when none starts after ``after``
    # (most often), nothing is left out.
    if not covered or units[covered[-1]].start <= after:
        return list(covered)
    keep: list[int] = []
    seen: set[str] = set()
    unbound: set[str] = set()
    for u in covered:
        unit = units[u]
        if unit.start > after and seen.isdisjoint(unit.paths) and unbound.isdisjoint(unit.fits):
            continue
        keep.append(u)
        seen.update(unit.paths)
        if not any(k.startswith("deployment:") for k in unit.paths):
            unbound.update(unit.paths)
    return keep


# What :func:`_choose` may take a cause to cost at least (fits are never raised above what
# the evidence gives: INFERRED_FIT and EARLY_FACTOR are at most 1).
_LOWEST_COST = min(OWN_COST, INFERRED_COST)
assert INFERRED_FIT <= 1.0 and EARLY_FACTOR <= 1.0


def _choose(units: Sequence[_Unit], window: timedelta) -> list[tuple[str, list[int]]]:
    """Causes chosen greedily (lazy evaluation: gains only shrink), and the units each
    explains best; units no chosen cause explains stand alone, under their own node."""
    by_node: dict[str, list[int]] = {}
    allowed: set[str] = set()
    for u, unit in enumerate(units):
        allowed.update(unit.own)
        for node in unit.fits:
            by_node.setdefault(node, []).append(u)
            if node.split(":")[0] in _INFERABLE:
                allowed.add(node)
    heap: list[tuple[float, int, _Facility]] = []
    serial = 0
    best = [ALONE_FIT * unit.weight for unit in units]
    longest = max((unit.lag for unit in units), default=timedelta(0))
    for node, cands in sorted(by_node.items()):
        if node not in allowed:
            continue
        cands.sort(key=lambda u: units[u].start)
        starts = [units[u].start for u in cands]
        # What each candidate could add at most: timing only lowers a fit, and no cause has
        # been opened yet. A cause whose candidates could not add more than the lowest cost
        # (with room for rounding) has no gain, and is not worked out.
        most = list(
            accumulate((max(0.0, units[u].fits[node] - best[u]) for u in cands), initial=0.0)
        )
        # A busy neighbour's trouble starts with its own alerts: the alerts it reaches against
        # lineage never open its window (else choosing would grow with the square of a host's
        # tenants).
        anchors = sorted({starts[k] for k, u in enumerate(cands) if node not in units[u].lagged})
        for anchor in anchors:
            k = bisect.bisect_left(starts, anchor)
            # Only the candidates from the anchor on, up to the longest lag after it, can be
            # covered (candidates come by start): the others need not be looked at.
            end = bisect.bisect_right(starts, anchor + longest, k)
            if most[end] - most[k] < _LOWEST_COST - 1e-6:
                continue
            fac = _facility(node, anchor, units, cands[k:end], late=window)
            gain = fac.gain(best)
            if gain > 0:
                heapq.heappush(heap, (-gain, serial, fac))
                serial += 1
    opened: list[_Facility] = []
    while heap:
        _, k, fac = heapq.heappop(heap)
        gain = fac.gain(best)
        if gain <= 1e-9:
            continue
        if heap and gain < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-gain, k, fac))
            continue
        opened.append(fac)
        for u, f in fac.cover:
            best[u] = max(best[u], f)
    owner: list[int | None] = [None] * len(units)
    score = [ALONE_FIT * unit.weight for unit in units]
    for n, fac in enumerate(opened):
        for u, f in fac.cover:
            if f > score[u] + 1e-12:
                owner[u], score[u] = n, f
    groups: dict[int, list[int]] = {}
    alone: list[tuple[str, list[int]]] = []
    for u, chosen in enumerate(owner):
        if chosen is None:
            alone.append((min(units[u].own), [u]))
        else:
            groups.setdefault(chosen, []).append(u)
    return [(opened[n].node, us) for n, us in groups.items()] + alone


def rank_root_causes(
    alerts: Sequence[AlertLike],
    subjects: Sequence[str | None],
    categories: Sequence[str],
    graph: LineageGraph,
    *,
    limit: int = 5,
    window: timedelta | None = None,
    weights: Sequence[int] | None = None,
    changes: Sequence[Change] = (),
) -> list[RootCause]:
    """Root-cause candidates of one incident's alerts, best first (see the module docstring).

    Each node that could cause one of the alerts is scored by how well it explains all of them
    (semantics, distance, and whether its own first alert came first), less a cost that is
    higher for a node with no alert of its own. ``weights`` (see :func:`summarize`) say how
    many alerts each one stands for. A failed canary analysis puts the version it names first;
    else a model version rolled out (``changes``) shortly before most of the alerts, on the
    deployment they are on, is put first (see :func:`_rollout_verdict`).
    """
    ev = _Evidence(alerts, subjects, categories, graph)
    _hosts_claim(ev)
    _load_sources(ev)
    _spec_failures(ev)
    w = list(weights) if weights is not None else [1] * len(alerts)
    units = _units(ev, [[i] for i in range(len(alerts))], window or DEFAULT_WINDOW, w)
    nodes: set[str] = set()
    for i, fits in enumerate(ev.fits):
        nodes.update(n for n in fits if n in ev.owns[i] or n.split(":")[0] in _INFERABLE)
    start = min(a.starts_at for a in alerts)
    scored: list[tuple[tuple[Any, ...], RootCause]] = []
    # The units each node fits and the alerts on it, in their order, indexed once.
    fitting: dict[str, list[int]] = {}
    for u, unit in enumerate(units):
        for node in unit.fits:
            fitting.setdefault(node, []).append(u)
    on: dict[str, list[int]] = {}
    for i, owns in enumerate(ev.owns):
        for node in owns:
            on.setdefault(node, []).append(i)
    for node in nodes:
        # In one incident timing is judged from its first alert on, with no lag cut-off.
        fac = _facility(node, start, units, fitting.get(node, []), bounded=False)
        score = sum(f for _, f in fac.cover) - fac.cost
        covered = [u for u, _ in fac.cover]
        direct = on.get(node, [])
        if not direct and not covered:
            continue
        inferred = not direct
        rc = _candidate(
            node,
            covered,
            direct or covered,
            alerts,
            inferred=inferred,
            total=sum(w),
            score=score,
            weights=w,
        )
        scored.append(
            (
                (
                    -round(score, 9),
                    inferred,
                    rc.first_alert_at,
                    -rc.alert_count,
                    -_SEVERITY_RANK.get(rc.severity, 1),
                    node,
                ),
                rc,
            )
        )
    scored.sort(key=lambda x: x[0])
    ranked = [rc for _, rc in scored]
    verdict = _canary_verdict(alerts, subjects, graph)
    if verdict is not None:
        # The version a failed canary analysis names goes first, the verdict its evidence.
        version, said = verdict
        was = next((rc for rc in ranked if rc.node == version), None)
        first = was or _candidate(version, said, said, alerts, inferred=False, weights=w)
        n = sum(w[i] for i in said)
        reason = f"a failed canary analysis names the version it rolls out ({n} alert"
        ranked = [
            replace(first, inferred=False, reason=reason + ("s)" if n != 1 else ")")),
            *(rc for rc in ranked if rc.node != version),
        ]
    elif changes:
        rollout = _rollout_verdict(alerts, subjects, changes, window or DEFAULT_WINDOW, w)
        if rollout is not None:
            change, after = rollout
            was = next((rc for rc in ranked if rc.node == change.node), None)
            first = was or _candidate(
                change.node, after, after, alerts, inferred=True, total=sum(w), weights=w
            )
            lead = int((min(alerts[i].starts_at for i in after) - change.at).total_seconds())
            n = sum(w[i] for i in after)
            reason = (
                f"rolled out to {change.deployment} {lead // 60} min {lead % 60} s before its "
                f"first alert; {n} of the {sum(w)} alerts follow on that deployment"
            )
            ranked = [
                replace(first, reason=reason),
                *(rc for rc in ranked if rc.node != change.node),
            ]
    return ranked[:limit]


@dataclass(frozen=True)
class Change:
    """A model version that went live on a deployment (a sync that rolled it out, or sent
    it traffic): ``node`` is the version (``model:NAME/VERSION``), ``at`` when it went live."""

    node: str
    deployment: str
    at: datetime


def _rollout_verdict(
    alerts: Sequence[AlertLike],
    subjects: Sequence[str | None],
    changes: Sequence[Change],
    window: timedelta,
    weights: Sequence[int],
) -> tuple[Change, list[int]] | None:
    """The rollout that most of an incident's alerts follow, and those alerts.

    Most incidents follow a change. A version rolled out to a deployment explains the alerts
    on that deployment when the first of them starts within ``window`` after it (none before
    it: a deployment already in trouble was not put there by the rollout) and they are at
    least half of the incident's alerts (a host failing under several deployments, one of
    which was just rolled out, is not that rollout's doing). Of several, the one most alerts
    follow, then the latest."""
    total = sum(weights)
    best: tuple[int, datetime, Change, list[int]] | None = None
    for change in changes:
        dep = change.deployment
        on = [
            i
            for i, a in enumerate(alerts)
            if a.labels.get("deployment") == dep or subjects[i] == f"deployment:{dep}"
        ]
        if not on:
            continue
        first = min(alerts[i].starts_at for i in on)
        if not change.at <= first <= change.at + window:
            continue
        n = sum(weights[i] for i in on)
        if 2 * n < total:
            continue
        if best is None or (n, change.at) > best[:2]:
            best = (n, change.at, change, on)
    return None if best is None else (best[2], best[3])


# What a host's alert says when the host is failing its tenants (not ready, short of memory,
# disk, CPU or network); a clock out of sync or a certificate about to expire does not.
_DEGRADING_WORDS = frozenset(
    {"ready", "unreachable", "down", "memory", "oom", "pressure", "disk", "filesystem", "cpu"}
    | {"load", "saturation", "network", "kubelet", "pid", "pids"}
)


def _hosts_claim(ev: _Evidence) -> None:
    """A host with an alert of its own explains its tenants' trouble better than their other
    hosts that raised none: where an alerting host explains an alert, a silent host explains
    it no better than it (it is dropped from the alert's causes when it would explain it as
    well or better). Changes ``ev.fits`` of those alerts (new dicts)."""
    alerting = {
        n
        for n, a in zip(ev.nodes, ev.alerts, strict=True)
        if n.startswith("host:") and not _DEGRADING_WORDS.isdisjoint(_words(a.name))
    }
    if not alerting:
        return
    for i, fits in enumerate(ev.fits):
        claim = max((f for n, f in fits.items() if n in alerting and n != ev.nodes[i]), default=0.0)
        if claim <= 0.0:
            continue
        silent = [
            n for n, f in fits.items() if n.startswith("host:") and n not in alerting and f <= claim
        ]
        if silent:
            ev.fits[i] = {n: f for n, f in fits.items() if n not in silent}


_AUTOSCALER_WORDS = frozenset({"hpa", "autoscaler", "autoscaling"})
_AT_LIMIT_WORDS = frozenset({"maxed", "max", "maximum", "limit"})


def _load_sources(ev: _Evidence) -> None:
    """Deployments whose autoscaler is at its limit (``KubeHpaMaxedOut``) are a load source,
    not a victim: their demand is more than they can scale to. A host does not explain that
    alert; the deployment explains the load it puts on its hosts (their CPU alerts) and on the
    other deployments there (their latency) as well as those hosts would, only once its own
    trouble has shown (see :func:`_facility`). Changes ``ev.fits`` of those alerts (new dicts:
    the memo shared with other alerts stays as it was)."""
    at_limit = [
        i
        for i, a in enumerate(ev.alerts)
        if ev.nodes[i].startswith("deployment:")
        and not _AUTOSCALER_WORDS.isdisjoint(words := _words(a.name))
        and not _AT_LIMIT_WORDS.isdisjoint(words)
    ]
    if not at_limit:
        return
    for i in at_limit:
        ev.fits[i] = {n: f for n, f in ev.fits[i].items() if not n.startswith("host:")}
    saturated = {ev.nodes[i] for i in at_limit}
    for i, lagged in enumerate(ev.lagged):
        busy = saturated & lagged
        if not busy:
            continue
        fits = dict(ev.fits[i])
        for dep in busy:
            hosts = [fits[h] for h in ev.graph.parents(dep) if h.startswith("host:") and h in fits]
            fits[dep] = max(fits[dep], *hosts, 0.0)
        ev.fits[i] = fits


_MEMORY_WORDS = frozenset({"memory", "oom"})


def _spec_failures(ev: _Evidence) -> None:
    """A deployment whose rollout is stuck or whose containers wait to start (an image that
    cannot be pulled, a config that cannot be read) has its cause in its own spec, not in a
    host: hosts do not explain those alerts. A container killed for running out of memory
    hit its own limit, unless a host it runs on reports its memory short (then that host still
    explains it). Changes ``ev.fits`` of those alerts (new dicts, as :func:`_load_sources`)."""
    short = {
        ev.nodes[i]
        for i, a in enumerate(ev.alerts)
        if ev.nodes[i].startswith("host:") and not _MEMORY_WORDS.isdisjoint(_words(a.name))
    }
    for i, a in enumerate(ev.alerts):
        if not ev.nodes[i].startswith("deployment:"):
            continue
        words = _words(a.name)
        if "waiting" in words or {"rollout", "stuck"} <= words:
            keep: set[str] = set()
        elif "oom" in words:
            keep = short
        else:
            continue
        if any(n.startswith("host:") and n not in keep for n in ev.fits[i]):
            ev.fits[i] = {
                n: f for n, f in ev.fits[i].items() if not n.startswith("host:") or n in keep
            }


_FAILED_WORDS = frozenset({"failed", "failure", "failing", "aborted", "error", "inconclusive"})


def _is_canary_verdict(name: str, labels: Mapping[str, str]) -> bool:
    """Whether an alert says a progressive rollout's analysis failed: a failure of an analysis
    (``CanaryAnalysisFailed``, ``AnalysisRunFailed``), a rollout aborted (``RolloutAborted``;
    not one stuck, which a bad config does as well), or a canary failing with a ``rollout``
    label (a synthetic "canary" probe has none)."""
    words = _words(name)
    if _FAILED_WORDS.isdisjoint(words):
        return False
    return (
        "analysis" in words
        or {"rollout", "aborted"} <= words
        or ("canary" in words and "rollout" in labels)
    )


def _canary_verdict(
    alerts: Sequence[AlertLike], subjects: Sequence[str | None], graph: LineageGraph
) -> tuple[str, list[int]] | None:
    """The model version a failed canary analysis blames, and the alerts saying so.

    A progressive-delivery controller (Argo Rollouts, Flagger) compares a canary, serving the
    version being rolled out, with the stable deployment on the same traffic; an alert that
    its analysis failed (``CanaryAnalysisFailed``, ``AnalysisRunFailed``) is a verdict that
    the new version is worse, whatever the canary's own symptoms point at. The version rolled
    out is the newest the alert's deployment serves (by version number; without numbers, the
    one fewest deployments serve)."""
    found: dict[str, list[int]] = {}
    for i, a in enumerate(alerts):
        if not _is_canary_verdict(a.name, a.labels):
            continue
        dep = a.labels.get("deployment") or a.labels.get("rollout")
        node = f"deployment:{dep}" if dep else subjects[i]
        if not node or not node.startswith("deployment:") or node not in graph:
            continue
        versions = [p for p in graph.parents(node) if p.startswith("model:")]
        if versions:
            newest = max(versions, key=lambda v: _version_order(v, graph))
            found.setdefault(newest, []).append(i)
    if not found:
        return None
    version = min(found, key=lambda v: (min(alerts[i].starts_at for i in found[v]), v))
    return version, found[version]


def _version_order(node: str, graph: LineageGraph) -> tuple[int, int, str]:
    version = node.rpartition("/")[2]
    serving = sum(1 for c in graph.children(node) if c.startswith("deployment:"))
    return (int(version) if version.isdigit() else -1, -serving, node)


def _candidate(
    node: str,
    covered: list[int],
    direct: list[int],
    alerts: Sequence[AlertLike],
    *,
    inferred: bool,
    total: int = 0,
    score: float = 0.0,
    weights: Sequence[int] | None = None,
) -> RootCause:
    kind = node.partition(":")[0]
    first = min(alerts[i].starts_at for i in direct)
    count = sum(_count(alerts[i]) for i in direct)
    severity = max((alerts[i].severity for i in direct), key=lambda s: _SEVERITY_RANK.get(s, 1))
    n = len(covered) if weights is None else sum(weights[i] for i in covered)
    on = len(direct) if weights is None else sum(weights[i] for i in direct)
    plural = "s" if n != 1 else ""
    if inferred:
        reason = f"no alert of its own, but explains {n} of the {total} alerts"
    elif kind == "alert":
        reason = f"{n} alert{plural} that name no lineage node"
    else:
        reason = f"explains {n} alert{plural} ({on} on it)"
    return RootCause(
        node=node,
        kind=kind,
        explains=n,
        inferred=inferred,
        first_alert_at=first,
        alert_count=count,
        severity=severity,
        reason=reason,
        score=round(score, 3),
    )


def summarize(
    alerts: Sequence[AlertLike],
    graph: LineageGraph,
    *,
    subjects: Sequence[str | None] | None = None,
    categories: Sequence[str] | None = None,
    window: timedelta = DEFAULT_WINDOW,
    weights: Sequence[int] | None = None,
    changes: Sequence[Change] = (),
) -> IncidentSummary:
    """Kind, severity, title and ranked root causes of one group of alerts.

    ``weights``, when given, say how many alerts each one given stands for: alerts with the
    same node, category, severity and labels that correlation reads are interchangeable but
    for their times, so a store can pass one of each kind with its earliest start, latest
    sighting, summed ``count`` and their number, and get the summary of them all.
    ``changes``: model versions rolled out lately (see :func:`rank_root_causes`).
    """
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
    w = list(weights) if weights is not None else [1] * len(alerts)
    roots = rank_root_causes(alerts, subs, cats, graph, window=window, weights=w, changes=changes)
    top = roots[0] if roots else None
    kind = _incident_kind(top, subs, cats, graph, w)
    severity = max((a.severity for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 1))
    deployments = sorted(
        {a.labels["deployment"] for a in alerts if a.labels.get("deployment")}
        | {s.partition(":")[2] for s in subs if s and s.startswith("deployment:")}
    )
    models = sorted(
        {a.labels["model"] for a in alerts if a.labels.get("model")}
        | {s[6:].rsplit("/", 1)[0] for s in subs if s and s.startswith("model:")}
    )
    n = sum(w)
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
        categories=dict(_weighted(cats, w)),
        deployments=deployments,
        models=models,
        alert_count=n,
    )


@dataclass(frozen=True)
class _Stand:
    """An alert standing for several of one kind (see :func:`summarize_kinds`)."""

    name: str
    labels: Mapping[str, str]
    severity: str
    starts_at: datetime
    fingerprint: str
    last_seen_at: datetime
    count: int


def _kind_cuts(
    heads: Sequence[AlertLike], firsts: Sequence[datetime], graph: LineageGraph
) -> list[list[datetime]]:
    """Where the alerts of each kind (see :func:`summarize_kinds`) must be told apart: the
    times at which a cause the kind fits, but is not on, has its own first alert, less
    :data:`EARLY_SLACK` (the alerts before count for less), and, for a cause that reaches
    the kind against lineage, that time plus :data:`EARLY_SLACK` (the alerts until then
    count for less). ``heads`` are one alert per kind and ``firsts`` the earliest start of
    each kind; each list sorted."""
    cats = [categorize(a.name, a.labels) for a in heads]
    subs = [subject_of(a, graph, c) for a, c in zip(heads, cats, strict=True)]
    ev = _Evidence(heads, subs, cats, graph)
    onsets: dict[str, datetime] = {}
    for i, first in enumerate(firsts):
        for node in ev.owns[i]:
            if node not in onsets or first < onsets[node]:
                onsets[node] = first
    return [
        sorted(
            {onsets[n] - EARLY_SLACK for n in ev.fits[i] if n in onsets and n not in own}
            | {onsets[n] + EARLY_SLACK for n in ev.lagged[i] if n in onsets}
        )
        for i, own in enumerate(ev.owns)
    ]


def summarize_kinds(
    kinds: Sequence[tuple[AlertLike, Sequence[tuple[int, datetime, datetime, int]]]],
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    changes: Sequence[Change] = (),
) -> IncidentSummary:
    """The :func:`summarize` of many alerts given one per kind: the same figures, at a cost
    that follows the kinds and not the alerts.

    Each kind is an alert (its name, labels, severity and fingerprint stand for all of the
    kind: alerts with the same node, category, severity and ``feature``, ``deployment`` and
    ``model`` labels are interchangeable) with its members as ``(position, start, last seen,
    count)``, ``position`` being where the alert comes in the order :func:`summarize` would
    get them. Timing is the only thing that tells members apart: a cause counts an alert
    that started before its own first alert (less :data:`EARLY_SLACK`) for less, and one it
    reaches against lineage that started within :data:`EARLY_SLACK` after it. Members are
    therefore split where one of those onsets falls and each part is passed on as one alert
    with a weight, so that the ranking is the one of all the alerts.
    """
    if not kinds:
        raise AIOpsError("cannot summarize an incident without alerts")
    heads = [k for k, _ in kinds]
    cuts = _kind_cuts(heads, [min(m[1] for m in members) for _, members in kinds], graph)
    parts: list[tuple[int, AlertLike, datetime, datetime, int, int]] = []
    for (head, members), at in zip(kinds, cuts, strict=True):
        split: dict[int, list[tuple[int, datetime, datetime, int]]] = {}
        for member in members:
            split.setdefault(bisect.bisect_right(at, member[1]), []).append(member)
        for part in split.values():
            parts.append(
                (
                    min(pos for pos, _, _, _ in part),
                    head,
                    min(start for _, start, _, _ in part),
                    max(seen for _, _, seen, _ in part),
                    sum(count for _, _, _, count in part),
                    len(part),
                )
            )
    parts.sort(key=lambda p: p[0])
    return _summarize_parts([p[1:] for p in parts], graph, window=window, changes=changes)


def summarize_totals(
    kinds: Sequence[tuple[AlertLike, tuple[int, datetime, datetime, datetime, int, int]]],
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    changes: Sequence[Change] = (),
) -> IncidentSummary | None:
    """:func:`summarize_kinds` of kinds given by their totals instead of their members: each
    ``(first position, first start, last start, last seen, summed count, number of alerts)``.

    None when a kind's alerts must be told apart (one of the kind's cuts falls between its
    first and last start): :func:`summarize_kinds` with the members gives the summary then.
    Otherwise each kind is one part, as :func:`summarize_kinds` would make it: a store can
    sum an incident up from a few aggregates per kind, without reading its alerts.
    """
    if not kinds:
        raise AIOpsError("cannot summarize an incident without alerts")
    cuts = _kind_cuts([k for k, _ in kinds], [t[1] for _, t in kinds], graph)
    parts: list[tuple[int, AlertLike, datetime, datetime, int, int]] = []
    for (head, (pos, first, last, seen, count, n)), at in zip(kinds, cuts, strict=True):
        if bisect.bisect_right(at, first) != bisect.bisect_right(at, last):
            return None
        parts.append((pos, head, first, seen, count, n))
    parts.sort(key=lambda p: p[0])
    return _summarize_parts([p[1:] for p in parts], graph, window=window, changes=changes)


def _summarize_parts(
    parts: Sequence[tuple[AlertLike, datetime, datetime, int, int]],
    graph: LineageGraph,
    *,
    window: timedelta = DEFAULT_WINDOW,
    changes: Sequence[Change] = (),
) -> IncidentSummary:
    """The :func:`summarize` of alerts given as parts of kinds (see :func:`summarize_kinds`),
    each ``(head, first start, last seen, summed count, number of alerts)``, in the order
    of their first alert; no part of a kind may hold alerts on both sides of one of the
    kind's :func:`_kind_cuts`."""
    if not parts:
        raise AIOpsError("cannot summarize an incident without alerts")
    stands: list[AlertLike] = []
    cats: list[str] = []
    for head, start, seen, count, _ in parts:
        stands.append(
            _Stand(
                name=head.name,
                labels=head.labels,
                severity=head.severity,
                starts_at=start,
                fingerprint=head.fingerprint,
                last_seen_at=seen,
                count=count,
            )
        )
        cats.append(categorize(head.name, head.labels))
    return summarize(
        stands,
        graph,
        subjects=[subject_of(a, graph, c) for a, c in zip(stands, cats, strict=True)],
        categories=cats,
        window=window,
        weights=[p[4] for p in parts],
        changes=changes,
    )


def _weighted(items: Sequence[str], weights: Sequence[int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for item, w in zip(items, weights, strict=True):
        out[item] += w
    return out


def _incident_kind(
    top: RootCause | None,
    subjects: Sequence[str | None],
    categories: Sequence[str],
    graph: LineageGraph,
    weights: Sequence[int],
) -> str:
    if top is not None and top.kind == "host":
        return "infrastructure"
    if top is not None and top.kind in ("dataset", "feature"):
        return "data_drift"
    explained = [
        i
        for i, s in enumerate(subjects)
        if top is None or top.kind == "alert" or (s is not None and graph.is_upstream(top.node, s))
    ] or list(range(len(categories)))
    counts = _weighted(
        [_KIND_OF_CATEGORY[categories[i]] for i in explained], [weights[i] for i in explained]
    )
    return min(counts, key=lambda k: (-counts[k], _KIND_PRIORITY.index(k)))


def correlate(
    alerts: Sequence[AlertLike],
    graph: LineageGraph,
    window: timedelta = DEFAULT_WINDOW,
    *,
    groups: Sequence[Any] | None = None,
    weights: Sequence[int] | None = None,
    onsets: Mapping[Any, datetime] | None = None,
    changes: Sequence[Change] = (),
) -> list[IncidentDraft]:
    """Group alerts into incident drafts (see the module docstring).

    Args:
        alerts: The alerts, in any order.
        graph: The lineage graph.
        window: How long after a cause's onset its effects may start (quality drops and drift
            get longer, see :data:`QUALITY_LAG` and :data:`DRIFT_LAG`).
        groups: Optional group key per alert (e.g. an incident id); alerts with the same key
            (not None) stay in one group.
        weights: Optional number of alerts each one stands for (see :func:`summarize`):
            a store passes the alerts of an open incident one of each kind.
        onsets: Optional start of a group (by its key), when it began before the alerts
            given: a store passes only the recent alerts of an open incident, and the
            incident's effects are timed from when it opened, not from its latest alerts.
        changes: Model versions rolled out lately: evidence for ranking root causes (see
            :func:`rank_root_causes`), not for grouping.

    Returns:
        One draft per group, ordered by when the group opened.
    """
    if window < timedelta(0):
        raise AIOpsError(f"correlation window must not be negative, got {window}")
    n = len(alerts)
    if groups is not None and len(groups) != n:
        raise AIOpsError(f"{n} alerts but {len(groups)} group keys")
    if weights is not None and len(weights) != n:
        raise AIOpsError(f"{n} alerts but {len(weights)} weights")
    cats = [categorize(a.name, a.labels) for a in alerts]
    subs = [subject_of(a, graph, c) for a, c in zip(alerts, cats, strict=True)]
    parts = _parts(alerts, groups)
    ev = _Evidence(alerts, subs, cats, graph)
    _hosts_claim(ev)
    starts = (
        None
        if onsets is None or groups is None
        else [None if g is None else onsets.get(g) for g in groups]
    )
    units = _units(ev, parts, window, weights, starts)
    drafts = []
    for _, chosen in _choose(units, window):
        idx = sorted(i for u in chosen for i in units[u].members)
        drafts.append(
            IncidentDraft(
                alert_indices=idx,
                make_summary=partial(
                    summarize,
                    [alerts[i] for i in idx],
                    graph,
                    subjects=[subs[i] for i in idx],
                    categories=[cats[i] for i in idx],
                    window=window,
                    weights=None if weights is None else [weights[i] for i in idx],
                    changes=changes,
                ),
            )
        )
    drafts.sort(
        key=lambda d: (min(alerts[i].starts_at for i in d.alert_indices), d.alert_indices[0])
    )
    return drafts


def _end(alert: AlertLike) -> datetime:
    ended = getattr(alert, "ends_at", None)
    return ended if isinstance(ended, datetime) else _last_seen(alert)


def _parts(alerts: Sequence[AlertLike], groups: Sequence[Any] | None) -> list[list[int]]:
    """Alerts that go together whatever the evidence: the same group key, or a flap (the same
    fingerprint firing again within :data:`FLAP_GRACE` of its end)."""
    parent = list(range(len(alerts)))

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
    by_fp: dict[str, list[int]] = {}
    for i, a in enumerate(alerts):
        by_fp.setdefault(a.fingerprint, []).append(i)
    for idx in by_fp.values():
        idx.sort(key=lambda i: alerts[i].starts_at)
        last = idx[0]
        until = _end(alerts[last])
        for i in idx[1:]:
            if alerts[i].starts_at <= until + FLAP_GRACE:
                union(i, last)
            if _end(alerts[i]) >= until:
                last, until = i, _end(alerts[i])
    members: dict[int, list[int]] = {}
    for i in range(len(alerts)):
        members.setdefault(find(i), []).append(i)
    return list(members.values())


def neighbourhood(alerts: Sequence[AlertLike], graph: LineageGraph) -> set[str]:
    """Every node whose alerts could share a cause with one of ``alerts``: the causes each
    could have (see :data:`MAX_HOPS`) and what lies within that many hops downstream of them.

    The store reads the recent alerts of these nodes only, so correlating a batch costs its
    alerts times their neighbours, whatever the number of alerts stored.
    """
    cats = [categorize(a.name, a.labels) for a in alerts]
    subs = [subject_of(a, graph, c) for a, c in zip(alerts, cats, strict=True)]
    ev = _Evidence(alerts, subs, cats, graph)
    causes = {n for fits in ev.fits for n in fits}
    out = set(causes)
    frontier = [c for c in causes if c in graph]
    for _ in range(MAX_HOPS):
        nxt = []
        for n in frontier:
            for child in graph.children(n):
                if child not in out:
                    out.add(child)
                    nxt.append(child)
        frontier = nxt
    return out


def correlation_key(alert: AlertLike, graph: LineageGraph) -> tuple[str, str | None]:
    """The node an alert is about (its stand-in when it names none) and the deployment node
    its labels name: what the store indexes to find an alert's neighbours."""
    node = subject_of(alert, graph) or _pseudo_node(alert)
    dep = alert.labels.get("deployment")
    return node, (f"deployment:{dep}" if dep else None)


def max_lag(window: timedelta) -> timedelta:
    """The longest an effect may follow its cause and still be grouped with it."""
    return max(_lag(c, window) for c in CATEGORIES)
