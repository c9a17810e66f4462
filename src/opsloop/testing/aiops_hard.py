"""Hard seeded incident scenarios for correlation, written apart from the correlation rules.

Not production code. Each scenario is a fresh estate (shared hosts, datasets whose versions
train several models, canary deployments serving two versions) in which one to three faults
of five kinds happen at nearly the same time, while unrelated noise fires around them:

* ``dataset_drift`` — a dataset version drifts (root: the dataset). Feature drift at the
  deployments of the models trained on it within minutes, prediction drift a little later,
  quality drops 30-90 minutes later (labels arrive late).
* ``feature_broken`` — a pipeline breaks one column of a dataset version (root: the feature).
* ``host_degraded`` — a host saturates (root: the host); latency and errors on its deployments.
* ``bad_model`` — a new model version is worse (root: the model version); prediction drift,
  quality drops and sometimes errors on every deployment serving it (canaries included).
* ``deployment_config`` — a deployment is misconfigured (root: the deployment): a replica
  mismatch, latency, errors and sometimes quality drops on it alone.

The alert on the root itself is missing in a share of faults (it was never configured, or it
was silenced). Notifications come as a monitor or Alertmanager sends them: repeats while an
alert fires (Alertmanager resends some twice), flapping alerts that resolve and fire again
minutes later, delivery delays that put notifications out of order. Noise is heavy (random
alerts on random nodes, a share of them close to the faults) and chronic (the same alert
firing again and again all scenario long: one problem, so all its firings share one truth).

:func:`generate` returns the notifications in delivery order with the truth of each;
:func:`pairwise_counts` and :func:`root_hits` score an incident assignment of them, and
:func:`indistinguishable_bound` is the grouping of an oracle that knows the faults but, like any
correlation that reads labels, lineage and timing, cannot tell a noise alert from a symptom its
fault would have raised there and then: a bound on what such a method can score.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.aiops.alerts import AlertIn, parse_alertmanager
from opsloop.aiops.correlation import FLAP_GRACE
from opsloop.aiops.lineage import LineageGraph
from opsloop.testing.aiops_scenarios import COLUMNS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "FAULT_KINDS",
    "LEVELS",
    "Fault",
    "HardScenario",
    "Level",
    "Notification",
    "generate",
    "indistinguishable_bound",
    "pairwise_counts",
    "root_hits",
]

FAULT_KINDS = ("dataset_drift", "feature_broken", "host_degraded", "bad_model", "deployment_config")

# The simple simulation's columns and two more.
_COLUMNS = (*COLUMNS, "amount", "merchant")
_HOST_ROOT_ALERTS = ("node_cpu_saturation", "node_memory_pressure", "node_disk_pressure")
_DATASET_ROOT_ALERTS = ("dataset_null_rate", "dataset_schema_violation", "dataset_freshness_stale")


@dataclass(frozen=True)
class Level:
    """How hard a scenario is."""

    name: str
    faults: tuple[int, int]
    """Fewest and most concurrent faults."""
    missing_root: tuple[float, float]
    """Range of the share of faults whose root alert is missing."""
    noise_per_hour: float
    """Noise alerts per hour, on random nodes."""
    near_fault_noise: float
    """Share of noise alerts placed close to a fault."""
    chronic: int
    """Chronic noise sources (an alert that fires again and again)."""
    flap: float
    """Chance that an alert flaps (resolves and fires again within minutes)."""


LEVELS: dict[str, Level] = {
    "single": Level("single", (1, 1), (0.35, 0.45), 2.0, 0.2, 0, 0.1),
    "concurrent": Level("concurrent", (2, 2), (0.40, 0.55), 6.0, 0.3, 1, 0.2),
    "hard": Level("hard", (2, 3), (0.50, 0.60), 12.0, 0.4, 2, 0.3),
}
"""The difficulty levels, easiest first."""


@dataclass(frozen=True)
class Fault:
    """One fault of a scenario: its kind, true root cause, start and whether its root alerted."""

    id: str
    kind: str
    root: str
    start: datetime
    root_alerted: bool


@dataclass(frozen=True)
class Notification:
    """One notification as delivered: the alert, when it arrived and whose it is."""

    delivered_at: datetime
    alert: AlertIn
    truth: str


@dataclass
class HardScenario:
    """A generated scenario: the estate's lineage, the faults and the notifications."""

    seed: int
    level: str
    graph: LineageGraph
    faults: list[Fault]
    notifications: list[Notification] = field(default_factory=list)

    def episodes(self) -> tuple[list[AlertIn], list[str]]:
        """Distinct firing episodes (fingerprint and start) with their latest sighting and
        truth: what an offline correlation sees once everything has arrived."""
        latest: dict[tuple[str, datetime], AlertIn] = {}
        truth: dict[tuple[str, datetime], str] = {}
        for n in self.notifications:
            a = n.alert
            key = (a.fingerprint, a.starts_at)
            prev = latest.get(key)
            if prev is None or a.seen_at > prev.seen_at:
                latest[key] = a
            truth[key] = n.truth
        keys = sorted(latest, key=lambda k: (latest[k].starts_at, k))
        return [latest[k] for k in keys], [truth[k] for k in keys]


class _Estate:
    """A random estate: datasets (with versions) → features → model versions → deployments,
    hosts → deployments."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        edges: list[tuple[str, str]] = []
        n_base = int(rng.integers(3, 6))
        self.dataset_columns: dict[str, list[str]] = {}
        bases: list[list[str]] = []
        for _ in range(n_base):
            cols = sorted(rng.choice(_COLUMNS, size=int(rng.integers(6, 12)), replace=False))
            versions = [f"sha256:{rng.bytes(32).hex()}" for _ in range(int(rng.integers(1, 3)))]
            for d in versions:
                self.dataset_columns[d] = [str(c) for c in cols]
            bases.append(versions)
        # model version -> (dataset version, columns used)
        self.model_versions: dict[str, tuple[str, list[str]]] = {}
        self.models: dict[str, list[str]] = {}
        for i in range(int(rng.integers(4, 8))):
            name = f"m{i}-{rng.bytes(2).hex()}"
            base = bases[int(rng.integers(0, len(bases)))]
            versions = []
            for v in range(1, int(rng.integers(1, 4)) + 1):
                dataset = base[min(len(base) - 1, int(rng.integers(0, len(base))))]
                cols = self.dataset_columns[dataset]
                used = sorted(
                    rng.choice(
                        cols,
                        size=int(rng.integers(min(5, len(cols)), len(cols) + 1)),
                        replace=False,
                    )
                )
                mv = f"{name}/{v}"
                self.model_versions[mv] = (dataset, [str(c) for c in used])
                versions.append(mv)
                for col in used:
                    feat = f"feature:{col}@{dataset}"
                    edges.append((f"dataset:{dataset}", feat))
                    edges.append((feat, f"model:{mv}"))
            self.models[name] = versions
        self.hosts = [
            f"ip-10-0-{rng.integers(0, 255)}-{rng.integers(1, 255)}-{k}"
            for k in range(int(rng.integers(3, 7)))
        ]
        # deployment -> (served versions, host)
        self.deployments: dict[str, tuple[list[str], str]] = {}
        names = list(self.models)
        for i in range(int(rng.integers(5, 11))):
            model = names[i % len(names)]
            versions = self.models[model]
            canary = len(versions) > 1 and rng.random() < 0.35
            served = versions[-2:] if canary else versions[-1:]
            host = self.hosts[int(rng.integers(0, len(self.hosts)))]
            dep = f"{model}-{('prod', 'eu', 'us', 'canary')[i // len(names) % 4]}{i}"
            self.deployments[dep] = (served, host)
            for mv in served:
                edges.append((f"model:{mv}", f"deployment:{dep}"))
            edges.append((f"host:{host}", f"deployment:{dep}"))
        self.graph = LineageGraph(edges)

    def deployments_of(self, model_version: str) -> list[str]:
        return sorted(d for d, (served, _) in self.deployments.items() if model_version in served)

    def versions_on(self, dataset: str) -> list[str]:
        return sorted(mv for mv, (d, _) in self.model_versions.items() if d == dataset)


@dataclass
class _Episode:
    name: str
    labels: dict[str, str]
    onset: datetime
    minutes: float
    severity: str
    truth: str


def _mlabels(rng: np.random.Generator, dep: str, mv: str) -> dict[str, str]:
    model, version = mv.rsplit("/", 1)
    labels = {"deployment": dep, "model": model}
    if rng.random() < 0.8:
        labels["version"] = version
    return labels


def _after(start: datetime, rng: np.random.Generator, low: float, high: float) -> datetime:
    return start + timedelta(minutes=float(rng.uniform(low, high)))


def _fault(
    estate: _Estate, kind: str, fid: str, start: datetime, missing: bool
) -> tuple[Fault, list[_Episode]]:
    rng = estate.rng
    eps: list[_Episode] = []

    def add(name: str, labels: dict[str, str], onset: datetime, sev: str = "warning") -> None:
        eps.append(_Episode(name, labels, onset, float(rng.uniform(30, 120)), sev, fid))

    make = {
        "dataset_drift": _data_fault,
        "feature_broken": _data_fault,
        "host_degraded": _host_fault,
        "bad_model": _model_fault,
        "deployment_config": _config_fault,
    }[kind]
    root = make(estate, kind, start, missing, add)
    return Fault(fid, kind, root, start, not missing), eps


def _data_fault(
    estate: _Estate, kind: str, start: datetime, missing: bool, add: Callable[..., None]
) -> str:
    rng = estate.rng
    # A dataset version that trained a model version some deployment serves.
    live = sorted({estate.model_versions[v][0] for s, _ in estate.deployments.values() for v in s})
    dataset = live[int(rng.integers(0, len(live)))]
    column = None
    if kind == "feature_broken":
        cols = sorted(
            {
                c
                for s, _ in estate.deployments.values()
                for v in s
                if estate.model_versions[v][0] == dataset
                for c in estate.model_versions[v][1]
            }
        )
        column = cols[int(rng.integers(0, len(cols)))]
    affected = [
        mv
        for mv in estate.versions_on(dataset)
        if column is None or column in estate.model_versions[mv][1]
    ]
    deps = sorted({d for mv in affected for d in estate.deployments_of(mv)})
    if kind == "dataset_drift":
        root = f"dataset:{dataset}"
        root_alert = _DATASET_ROOT_ALERTS[int(rng.integers(0, 3))]
        root_labels = {"dataset": dataset[: int(rng.integers(19, 40))]}
    else:
        root = f"feature:{column}@{dataset}"
        root_alert = "feature_null_rate"
        root_labels = {"feature": str(column), "dataset": dataset[:24]}
    if not missing:
        add(root_alert, root_labels, _after(start, rng, 0, 5))
    for n, dep in enumerate(deps):
        if n > 0 and rng.random() < 0.2:
            continue
        mv = next(v for v in estate.deployments[dep][0][::-1] if v in affected)
        used = estate.model_versions[mv][1]
        if column is None:
            k = int(rng.integers(2, min(5, len(used)) + 1))
            cols = [str(c) for c in rng.choice(used, size=k, replace=False)]
        else:
            cols = [column]
        for col in cols:
            add("feature_drift", {"feature": col, "deployment": dep}, _after(start, rng, 2, 15))
        if column is None or rng.random() < 0.5:
            add("prediction_drift", _mlabels(rng, dep, mv), _after(start, rng, 5, 25))
        if rng.random() < (0.6 if column is None else 0.4):
            add(
                "model_accuracy_drop",
                _mlabels(rng, dep, mv),
                _after(start, rng, 30, 90),
                "critical",
            )
    return root


def _host_fault(
    estate: _Estate, kind: str, start: datetime, missing: bool, add: Callable[..., None]
) -> str:
    rng = estate.rng
    crowded = [h for h in estate.hosts if any(v[1] == h for v in estate.deployments.values())]
    host = crowded[int(rng.integers(0, len(crowded)))]
    root = f"host:{host}"
    if not missing:
        key = "host" if rng.random() < 0.6 else "instance"
        value = host if key == "host" else f"{host}:9100"
        add(_HOST_ROOT_ALERTS[int(rng.integers(0, 3))], {key: value}, _after(start, rng, -3, 3))
    for dep, (served, h) in sorted(estate.deployments.items()):
        if h != host:
            continue
        labels = _mlabels(rng, dep, served[-1]) if rng.random() < 0.5 else {"deployment": dep}
        add("latency_p99_high", labels, _after(start, rng, 0, 6))
        if rng.random() < 0.7:
            add("error_rate_high", dict(labels), _after(start, rng, 1, 8), "critical")
    return root


def _model_fault(
    estate: _Estate, kind: str, start: datetime, missing: bool, add: Callable[..., None]
) -> str:
    rng = estate.rng
    served = sorted({v for s, _ in estate.deployments.values() for v in s})
    mv = served[int(rng.integers(0, len(served)))]
    root = f"model:{mv}"
    model, version = mv.rsplit("/", 1)
    if not missing:
        add(
            "model_version_eval_regression",
            {"model": model, "version": version},
            _after(start, rng, -5, 2),
        )
    for dep in estate.deployments_of(mv):
        labels = {"deployment": dep, "model": model, "version": version}
        add("prediction_drift", labels, _after(start, rng, 3, 15))
        if rng.random() < 0.8:
            add("model_accuracy_drop", dict(labels), _after(start, rng, 20, 60), "critical")
        if rng.random() < 0.3:
            add("error_rate_high", {"deployment": dep}, _after(start, rng, 1, 10), "critical")
    return root


def _config_fault(
    estate: _Estate, kind: str, start: datetime, missing: bool, add: Callable[..., None]
) -> str:
    rng = estate.rng
    dep = sorted(estate.deployments)[int(rng.integers(0, len(estate.deployments)))]
    root = f"deployment:{dep}"
    if not missing:
        add("deployment_replica_mismatch", {"deployment": dep}, _after(start, rng, 0, 3))
    mv = estate.deployments[dep][0][-1]
    add("latency_p99_high", {"deployment": dep}, _after(start, rng, 0, 5))
    if rng.random() < 0.8:
        add("error_rate_high", {"deployment": dep}, _after(start, rng, 0, 5), "critical")
    if rng.random() < 0.5:
        add(
            "model_accuracy_drop",
            _mlabels(rng, dep, mv),
            _after(start, rng, 15, 45),
            "critical",
        )
    if rng.random() < 0.4:
        add("prediction_drift", _mlabels(rng, dep, mv), _after(start, rng, 5, 20))
    return root


_NOISE = (
    "feature_drift",
    "prediction_drift",
    "latency_p99_high",
    "error_rate_high",
    "model_accuracy_drop",
    "node_memory_pressure",
    "dataset_null_rate",
    "deployment_replica_mismatch",
)


def _noise_labels(estate: _Estate) -> tuple[str, dict[str, str]]:
    rng = estate.rng
    name = _NOISE[int(rng.integers(0, len(_NOISE)))]
    dep = sorted(estate.deployments)[int(rng.integers(0, len(estate.deployments)))]
    served, host = estate.deployments[dep]
    mv = served[int(rng.integers(0, len(served)))]
    if name == "feature_drift":
        used = estate.model_versions[mv][1]
        return name, {"feature": used[int(rng.integers(0, len(used)))], "deployment": dep}
    if name in ("prediction_drift", "model_accuracy_drop"):
        return name, _mlabels(rng, dep, mv)
    if name == "node_memory_pressure":
        return name, {"host": host}
    if name == "dataset_null_rate":
        return name, {"dataset": estate.model_versions[mv][0][:24]}
    if name == "deployment_replica_mismatch":
        return name, {"deployment": dep}
    return name, {"deployment": dep} if rng.random() < 0.5 else _mlabels(rng, dep, mv)


def generate(seed: int, level: str | Level = "concurrent") -> HardScenario:
    """One scenario of a difficulty level, all of it drawn from ``seed``."""
    lv = LEVELS[level] if isinstance(level, str) else level
    rng = np.random.default_rng([seed, 0x5EED])
    estate = _Estate(rng)
    t0 = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(
        days=seed % 300, minutes=int(rng.integers(0, 600))
    )
    n_faults = int(rng.integers(lv.faults[0], lv.faults[1] + 1))
    p_missing = float(rng.uniform(*lv.missing_root))
    faults: list[Fault] = []
    episodes: list[_Episode] = []
    kinds = rng.permutation(len(FAULT_KINDS))
    for k in range(n_faults):
        kind = FAULT_KINDS[int(kinds[k % len(kinds)])]
        start = t0 + timedelta(minutes=float(rng.uniform(0, 30)))
        fault, eps = _fault(estate, kind, f"f{k}-{kind}", start, bool(rng.random() < p_missing))
        faults.append(fault)
        episodes += eps
    span = (-60.0, 240.0)
    n_noise = int(rng.poisson(lv.noise_per_hour * (span[1] - span[0]) / 60))
    for k in range(n_noise):
        if faults and rng.random() < lv.near_fault_noise:
            f = faults[int(rng.integers(0, len(faults)))]
            onset = f.start + timedelta(minutes=float(rng.uniform(-10, 40)))
        else:
            onset = t0 + timedelta(minutes=float(rng.uniform(*span)))
        name, labels = _noise_labels(estate)
        episodes.append(
            _Episode(name, labels, onset, float(rng.uniform(1, 20)), "warning", f"noise-{k}")
        )
    for c in range(lv.chronic):
        name, labels = _noise_labels(estate)
        at = span[0] + float(rng.uniform(0, 30))
        while at < span[1]:
            episodes.append(
                _Episode(
                    name,
                    labels,
                    t0 + timedelta(minutes=at),
                    float(rng.uniform(3, 10)),
                    "warning",
                    f"chronic-{c}",
                )
            )
            at += float(rng.uniform(15, 45))
    notes: list[Notification] = []
    for ep in episodes:
        notes += _deliver(rng, ep, lv.flap)
    notes.sort(key=lambda n: (n.delivered_at, n.alert.status == "firing"))
    return HardScenario(
        seed=seed, level=lv.name, graph=estate.graph, faults=faults, notifications=notes
    )


def _deliver(rng: np.random.Generator, ep: _Episode, flap: float) -> list[Notification]:
    """The notifications of one alert episode: segments (flapping), repeats, delays."""
    segments: list[tuple[datetime, float]] = []
    if rng.random() < flap:
        at = ep.onset
        for _ in range(int(rng.integers(2, 4))):
            length = max(1.0, ep.minutes * float(rng.uniform(0.15, 0.4)))
            segments.append((at, length))
            at += timedelta(minutes=length + float(rng.uniform(1, 6)))
    else:
        segments.append((ep.onset, ep.minutes))
    via_am = rng.random() < 0.5
    every = float(rng.choice([1.0, 5.0])) if not via_am else float(rng.choice([4.0, 5.0, 15.0]))
    out: list[Notification] = []
    for start, length in segments:
        steps = max(1, math.ceil(length / every))
        sightings = [start + timedelta(minutes=k * every) for k in range(steps)]
        end = start + timedelta(minutes=length)
        for seen in [*sightings, None]:
            status = "firing" if seen is not None else "resolved"
            when = seen or end
            copies = 2 if via_am and rng.random() < 0.15 else 1
            for _ in range(copies):
                delay = float(rng.exponential(0.5)) + (
                    float(rng.uniform(2, 8)) if rng.random() < 0.1 else 0.0
                )
                delivered = when + timedelta(minutes=delay)
                alert = (
                    _as_am(ep, start, end, status, delivered)
                    if via_am
                    else AlertIn(
                        name=ep.name,
                        labels=ep.labels,
                        severity=ep.severity,
                        status=status,
                        source="detector",
                        starts_at=start,
                        last_seen_at=when,
                        ends_at=end if status == "resolved" else None,
                    )
                )
                out.append(Notification(delivered, alert, ep.truth))
    return out


def _as_am(
    ep: _Episode, start: datetime, end: datetime, status: str, received: datetime
) -> AlertIn:
    """What Alertmanager's webhook would say of the episode, parsed as the webhook is."""
    item: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": ep.name, "severity": ep.severity, **ep.labels},
        "startsAt": start.isoformat(),
        "endsAt": end.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
    }
    payload = {"version": "4", "status": status, "receiver": "opsloop", "alerts": [item]}
    return parse_alertmanager(payload, received_at=max(received, start))[0]


def pairwise_counts(truths: Sequence[str], incidents: Sequence[Any]) -> tuple[int, int, int]:
    """``(true positive, false positive, false negative)`` pairs of a grouping.

    A pair of alerts is positive when both are in one incident, true when both have one
    truth (one fault, or one noise episode). Pool the counts of many scenarios, then
    precision = tp / (tp + fp), recall = tp / (tp + fn).
    """
    both: Counter[tuple[str, Any]] = Counter(zip(truths, incidents, strict=True))
    by_truth: Counter[str] = Counter(truths)
    by_inc: Counter[Any] = Counter(incidents)

    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    tp = sum(pairs(n) for n in both.values())
    return (
        tp,
        sum(pairs(n) for n in by_inc.values()) - tp,
        sum(pairs(n) for n in by_truth.values()) - tp,
    )


def root_hits(
    scenario: HardScenario,
    truths: Sequence[str],
    incidents: Sequence[Any],
    ranked: Mapping[Any, Sequence[str]],
) -> list[tuple[str, int | None]]:
    """For each fault, its kind and the rank (0-based) of its true root among the root causes
    of its main incident (the one holding most of its alerts), or None."""
    of_fault: dict[str, list[Any]] = defaultdict(list)
    for t, inc in zip(truths, incidents, strict=True):
        of_fault[t].append(inc)
    out: list[tuple[str, int | None]] = []
    for f in scenario.faults:
        incs = of_fault.get(f.id)
        if not incs:
            out.append((f.kind, None))
            continue
        main = Counter(incs).most_common(1)[0][0]
        roots = list(ranked.get(main, ()))
        out.append((f.kind, roots.index(f.root) if f.root in roots else None))
    return out


# What each fault kind raises (by alert name), and when, in minutes after the fault's start: the
# generators above, read as a table (each window widened by a minute for delivery).
_EFFECTS: dict[str, dict[str, tuple[float, float]]] = {
    "dataset_drift": {
        **dict.fromkeys(_DATASET_ROOT_ALERTS, (-1.0, 6.0)),
        "feature_drift": (1.0, 16.0),
        "prediction_drift": (4.0, 26.0),
        "model_accuracy_drop": (29.0, 91.0),
    },
    "feature_broken": {
        "feature_null_rate": (-1.0, 6.0),
        "feature_drift": (1.0, 16.0),
        "prediction_drift": (4.0, 26.0),
        "model_accuracy_drop": (29.0, 91.0),
    },
    "host_degraded": {
        **dict.fromkeys(_HOST_ROOT_ALERTS, (-4.0, 4.0)),
        "latency_p99_high": (-1.0, 7.0),
        "error_rate_high": (0.0, 9.0),
    },
    "bad_model": {
        "model_version_eval_regression": (-6.0, 3.0),
        "prediction_drift": (2.0, 16.0),
        "model_accuracy_drop": (19.0, 61.0),
        "error_rate_high": (0.0, 11.0),
    },
    "deployment_config": {
        "deployment_replica_mismatch": (-1.0, 4.0),
        "latency_p99_high": (-1.0, 6.0),
        "error_rate_high": (-1.0, 6.0),
        "prediction_drift": (4.0, 21.0),
        "model_accuracy_drop": (14.0, 46.0),
    },
}


def _on_path(scenario: HardScenario, alert: AlertIn, root: str) -> bool:
    """Whether an alert is about the root or a node downstream of it (by its resolved node,
    or by the deployment it names)."""
    graph = scenario.graph
    nodes = [graph.resolve(alert.labels)]
    if alert.labels.get("deployment"):
        nodes.append(f"deployment:{alert.labels['deployment']}")
    return any(
        n is not None and n in graph and (n == root or root in graph.ancestors(n)) for n in nodes
    )


def indistinguishable_bound(scenario: HardScenario) -> tuple[list[str], list[str]]:
    """Truths and an incident assignment of :meth:`HardScenario.episodes` that bound what a
    correlation reading labels, lineage and timing can score.

    Every fault is one incident, and nothing else joins it except noise it cannot be told
    from: an alert its fault kind raises, on the fault's root or downstream of it, started
    within the window in which the fault raises it. Other noise is an incident of its own
    episode (the firings of a chronic alert, one), except that an alert firing again within
    :data:`~opsloop.aiops.correlation.FLAP_GRACE` of its own end joins its earlier episode (a
    flap looks the same whoever caused it); a noise episode stays where its first alert went.
    The bound is generous (the oracle knows each fault's start and each noise episode, and
    separates concurrent faults perfectly), so no such method should score above it. Severity
    is left out on purpose: here noise is always a warning and some symptoms are critical, a
    tell of this simulator rather than of real incidents.
    """
    alerts, truths = scenario.episodes()
    faults = {f.id: f for f in scenario.faults}
    incidents: list[str] = []
    last_of: dict[str, tuple[datetime, str]] = {}
    noise_at: dict[str, str] = {}  # where each noise episode went with its first alert
    for alert, truth in zip(alerts, truths, strict=True):
        group = truth
        if truth in noise_at:
            group = noise_at[truth]
        elif truth not in faults:
            for f in scenario.faults:
                window = _EFFECTS[f.kind].get(alert.name)
                after = (alert.starts_at - f.start).total_seconds() / 60
                if window and window[0] <= after <= window[1] and _on_path(scenario, alert, f.root):
                    group = f.id
                    break
            else:
                prev = last_of.get(alert.fingerprint)
                if prev is not None and alert.starts_at - prev[0] <= FLAP_GRACE:
                    group = prev[1]
            noise_at[truth] = group
        incidents.append(group)
        end = alert.ends_at or alert.seen_at
        known = last_of.get(alert.fingerprint)
        last_of[alert.fingerprint] = (max(end, known[0]) if known else end, group)
    return truths, incidents
