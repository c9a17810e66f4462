"""Seeded incident scenarios of an ML platform, as its on-call engineer receives them.

Every scenario draws a fresh estate: a few Kubernetes nodes, data sets with several versions,
models trained on them, and deployments (production ones, canaries serving two versions,
several deployments sharing a node). One to three faults then break something, and the
monitoring stack reports it the way real tooling does:

* Prometheus rules (kube-state-metrics, node-exporter, model-server metrics) with CamelCase
  names and their usual labels (``namespace``, ``pod``, ``container``, ``job``, ``instance``
  as ``host:port`` …);
* batch data-quality checks (snake_case expectation names, run after each load, so they report
  minutes after the data landed);
* model monitoring (feature and prediction drift a quarter of an hour to an hour late,
  performance once ground-truth labels arrive, an hour or more late).

Infrastructure symptoms (latency, errors, crash loops) fire within minutes; the alert on the
cause itself is sometimes missing, because nobody monitors that part. Background alerts fire
on random parts of the estate, some of them close in time and place to a fault, and one chronic
flapper fires and clears all day. Everything passes through an Alertmanager-like router: alerts
are grouped by name and namespace, a new group is sent after a short wait, every group is sent
again on each group interval while any of its alerts fires (so firing alerts repeat every few
minutes), resolved alerts are sent once, and a few webhook deliveries are retried minutes late,
so they arrive out of order.

Each notification carries its truth: the fault (``fault-0`` …) or noise episode (``noise-3``,
``flapper``) it belongs to. Each fault carries its true root node.

Levels: 1 is one fault with light noise; 2 is two concurrent faults with moderate noise and
the flapper; 3 is two or three faults with heavy noise, part of it next to the faults.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.lineage import LineageGraph

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FAULT_KINDS",
    "LEVELS",
    "Episode",
    "Estate",
    "Fault",
    "Notification",
    "Scenario",
    "draw_estate",
    "generate",
]

LEVELS = (1, 2, 3)
"""Difficulty levels."""

FAULT_KINDS = (
    "bad_data",
    "feature_pipeline",
    "host_degraded",
    "bad_rollout",
    "deploy_misconfig",
    "traffic_surge",
)
"""Kinds of faults: bad data upstream (schema break, nulls, a late load, drifting inputs), a
broken feature pipeline, a degraded node, a bad model version rolled out, a misconfigured
deployment, and a traffic surge on one deployment (which also loads the nodes it runs on and
its neighbours there)."""

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HORIZON = timedelta(hours=3)
GROUP_WAIT = timedelta(seconds=30)
GROUP_INTERVAL = timedelta(minutes=5)
LATE_DELIVERY = 0.03  # share of webhook deliveries retried minutes late

NAMESPACE = "ml-serving"
DATA_NAMESPACE = "data-platform"

# Data sets and their columns; models and what they are trained on.
_DATASETS: dict[str, list[str]] = {
    "transactions": [
        "amount",
        "merchant_category",
        "card_present",
        "hour_of_day",
        "country",
        "txn_velocity_1h",
    ],
    "clickstream": ["session_length", "pages_viewed", "device_type", "referrer", "country"],
    "customer_profile": [
        "tenure_months",
        "monthly_charges",
        "plan_type",
        "support_tickets",
        "age_band",
    ],
    "sensor_readings": ["temperature", "vibration", "pressure", "rpm", "site_id"],
}
_MODELS: dict[str, list[str]] = {
    "transactions": ["fraud-detector", "chargeback-risk"],
    "clickstream": ["ctr-ranker", "session-intent"],
    "customer_profile": ["churn-predictor", "ltv-estimator"],
    "sensor_readings": ["failure-forecaster"],
}
_EXTRA_COLUMNS = ["ingest_lag_s", "region_code", "is_weekend", "channel"]

# Severity is a property of the rule, as in a real rule file, not of the truth.
_SEVERITY: dict[str, str] = {
    "KubePodCrashLooping": "warning",
    "KubePodNotReady": "warning",
    "KubeDeploymentReplicasMismatch": "warning",
    "KubeDeploymentRolloutStuck": "warning",
    "KubeContainerWaiting": "warning",
    "KubeHpaMaxedOut": "warning",
    "CPUThrottlingHigh": "info",
    "KubeNodeNotReady": "warning",
    "NodeMemoryPressure": "warning",
    "NodeMemoryHighUtilization": "warning",
    "NodeFilesystemAlmostOutOfSpace": "critical",
    "NodeFilesystemSpaceFillingUp": "warning",
    "NodeCPUHighUsage": "info",
    "NodeClockNotSynchronising": "warning",
    "NodeNetworkReceiveErrs": "warning",
    "KubeletPodStartUpLatencyHigh": "warning",
    "HighRequestLatency": "warning",
    "HighErrorRate": "critical",
    "ModelServerOOMKilled": "warning",
    "CanaryAnalysisFailed": "critical",
    "InferenceQueueBacklog": "warning",
}
_DATA_SEVERITY = "error"
_POD_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes name suffixes


@dataclass(frozen=True)
class Estate:
    """The ML platform of one scenario: lineage edges and what runs where."""

    edges: list[tuple[str, str]]
    datasets: dict[str, list[str]]  # logical name → version digests, oldest first
    columns: dict[str, list[str]]  # digest → columns
    dataset_name: dict[str, str]  # digest → logical name
    models: dict[str, list[int]]  # model name → versions
    trained_on: dict[str, tuple[str, list[str]]]  # model node → (digest, feature columns)
    serves: dict[str, list[str]]  # deployment → model nodes
    runs_on: dict[str, list[str]]  # deployment → hosts
    hosts: list[str]

    def deployments_of(self, model_node: str) -> list[str]:
        """Deployments serving a model version."""
        return [d for d, ms in self.serves.items() if model_node in ms]

    def deployments_on(self, host: str) -> list[str]:
        """Deployments with a replica on a host."""
        return [d for d, hs in self.runs_on.items() if host in hs]

    def served_models(self) -> list[str]:
        """Model versions that some deployment serves."""
        return sorted({m for ms in self.serves.values() for m in ms})

    def consumers(self, digest: str) -> list[str]:
        """Served model versions trained on a data set version."""
        return [m for m in self.served_models() if self.trained_on[m][0] == digest]


@dataclass(frozen=True)
class Fault:
    """One injected fault and its true root node."""

    id: str
    kind: str
    variant: str
    root: str
    started_at: datetime
    root_alerted: bool


@dataclass(frozen=True)
class Episode:
    """One firing of one alert (a fingerprint from start to end)."""

    name: str
    labels: dict[str, str]
    severity: str
    source: str
    starts_at: datetime
    ready_at: datetime  # when the rule fires (its ``for`` has passed)
    ends_at: datetime | None  # None: still firing at the end of the scenario
    truth: str
    subject: str  # the node the alert is about, as its author meant it


@dataclass(frozen=True)
class Notification:
    """One alert as delivered, with its truth."""

    alert: AlertIn
    delivered_at: datetime
    truth: str
    episode: int


@dataclass(frozen=True)
class Scenario:
    """A generated scenario: the estate, the faults, and the notifications in delivery order."""

    seed: int
    level: int
    estate: Estate
    faults: list[Fault]
    episodes: list[Episode]
    notifications: list[Notification]
    start: datetime = START
    end: datetime = START + HORIZON

    def graph(self) -> LineageGraph:
        """The lineage graph of the estate."""
        return LineageGraph(self.estate.edges)

    def batches(self, every: timedelta = timedelta(minutes=1)) -> list[tuple[datetime, list[int]]]:
        """Notification indices grouped by delivery window, with the window's end as now."""
        out: dict[datetime, list[int]] = defaultdict(list)
        for i, n in enumerate(self.notifications):
            k = (n.delivered_at - self.start) // every
            out[self.start + (k + 1) * every].append(i)
        return sorted(out.items())


# -- the estate ------------------------------------------------------------------------------


def _digest(rng: random.Random, name: str, version: int) -> str:
    salt = rng.getrandbits(64)
    return hashlib.sha256(f"{name}/{version}/{salt}".encode()).hexdigest()


def _host_name(rng: random.Random, pool: int) -> str:
    suffix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    return f"gke-ml-prod-pool-{pool}-{rng.getrandbits(32):08x}-{suffix}"


def _draw_datasets(
    rng: random.Random,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    datasets: dict[str, list[str]] = {}
    columns: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name in rng.sample(sorted(_DATASETS), rng.randint(2, 3)):
        cols = list(_DATASETS[name])
        versions = []
        for v in range(1, rng.randint(2, 4) + 1):
            if v > 1 and rng.random() < 0.3:
                cols = [*cols, rng.choice([c for c in _EXTRA_COLUMNS if c not in cols])]
            digest = _digest(rng, name, v)
            versions.append(digest)
            columns[digest] = list(cols)
            names[digest] = name
        datasets[name] = versions
    return datasets, columns, names


def _draw_models(
    rng: random.Random, datasets: dict[str, list[str]], columns: dict[str, list[str]]
) -> tuple[dict[str, list[int]], dict[str, tuple[str, list[str]]]]:
    models: dict[str, list[int]] = {}
    trained: dict[str, tuple[str, list[str]]] = {}
    for ds, versions in datasets.items():
        for model in rng.sample(_MODELS[ds], rng.randint(1, len(_MODELS[ds]))):
            n = rng.randint(2, 4)
            # Versions are retrained on the same or a newer data set version.
            idx = sorted(rng.randrange(len(versions)) for _ in range(n))
            models[model] = list(range(1, n + 1))
            for v, i in zip(models[model], idx, strict=True):
                cols = columns[versions[i]]
                feats = sorted(rng.sample(cols, rng.randint(max(3, len(cols) - 2), len(cols))))
                trained[f"model:{model}/{v}"] = (versions[i], feats)
    return models, trained


def _draw_deployments(
    rng: random.Random, models: dict[str, list[int]], hosts: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    serves: dict[str, list[str]] = {}
    runs_on: dict[str, list[str]] = {}
    for model, versions in models.items():
        latest, prev = versions[-1], versions[-2]
        canary = rng.random() < 0.6
        prod_version = prev if canary else latest
        serves[f"{model}-predictor"] = [f"model:{model}/{prod_version}"]
        if canary:
            serves[f"{model}-predictor-canary"] = [
                f"model:{model}/{prev}",
                f"model:{model}/{latest}",
            ]
        if rng.random() < 0.3:
            serves[f"{model}-batch-scorer"] = [f"model:{model}/{prod_version}"]
    for dep in serves:
        replicas = 1 if dep.endswith("-canary") else rng.choice([1, 2, 2, 3])
        runs_on[dep] = sorted(rng.sample(hosts, min(replicas, len(hosts))))
    return serves, runs_on


def draw_estate(rng: random.Random) -> Estate:
    """A fresh estate."""
    datasets, columns, names = _draw_datasets(rng)
    models, trained = _draw_models(rng, datasets, columns)
    pool = rng.randint(1, 3)
    hosts = [_host_name(rng, pool) for _ in range(rng.randint(3, 5))]
    serves, runs_on = _draw_deployments(rng, models, hosts)
    edges: set[tuple[str, str]] = set()
    for model_node, (digest, feats) in trained.items():
        for col in feats:
            feature = f"feature:{col}@{digest}"
            edges.add((f"dataset:{digest}", feature))
            edges.add((feature, model_node))
    for dep, ms in serves.items():
        edges.update((m, f"deployment:{dep}") for m in ms)
        edges.update((f"host:{h}", f"deployment:{dep}") for h in runs_on[dep])
    return Estate(
        edges=sorted(edges),
        datasets=datasets,
        columns=columns,
        dataset_name=names,
        models=models,
        trained_on=trained,
        serves=serves,
        runs_on=runs_on,
        hosts=hosts,
    )


# -- labels as each tool writes them ---------------------------------------------------------


@dataclass
class _Ctx:
    rng: random.Random
    estate: Estate
    episodes: list[Episode] = field(default_factory=list)
    pods: dict[str, list[str]] = field(default_factory=dict)

    def pod(self, dep: str) -> str:
        """A pod of a deployment (names stay the same within a scenario)."""
        if dep not in self.pods:
            rs = f"{self.rng.getrandbits(40):010x}"[:10]
            self.pods[dep] = [
                f"{dep}-{rs}-{''.join(self.rng.choices(_POD_CHARS, k=5))}"
                for _ in range(max(1, len(self.estate.runs_on[dep])))
            ]
        return self.rng.choice(self.pods[dep])

    def pod_ip(self) -> str:
        return (
            f"10.{self.rng.randint(40, 60)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"
        )


def _kube_labels(ctx: _Ctx, dep: str, name: str) -> dict[str, str]:
    """kube-state-metrics and cAdvisor alerts on a deployment's pods."""
    labels = {"namespace": NAMESPACE, "deployment": dep, "severity": _SEVERITY[name]}
    if name in {"KubeDeploymentReplicasMismatch", "KubeDeploymentRolloutStuck", "KubeHpaMaxedOut"}:
        labels["job"] = "kube-state-metrics"
        if name == "KubeHpaMaxedOut":
            labels["horizontalpodautoscaler"] = dep
        return labels
    labels["pod"] = ctx.pod(dep)
    labels["container"] = "kserve-container"
    labels["job"] = "kubelet" if name == "CPUThrottlingHigh" else "kube-state-metrics"
    if name in {"KubeContainerWaiting"}:
        labels["reason"] = ctx.rng.choice(["CreateContainerConfigError", "ImagePullBackOff"])
    return labels


def _serving_labels(ctx: _Ctx, dep: str, name: str, model: str | None = None) -> dict[str, str]:
    """Model-server request metrics, scraped per pod (so ``instance`` is a pod IP)."""
    labels = {
        "namespace": NAMESPACE,
        "deployment": dep,
        "service": f"{dep}-private",
        "job": "kserve-metrics",
        "instance": f"{ctx.pod_ip()}:8080",
        "severity": _SEVERITY[name],
    }
    if model is not None:
        # The server labels each predictor with the model it loaded.
        mname, version = model[6:].rsplit("/", 1)
        labels["model"] = mname
        labels["version"] = version
    return labels


def _node_labels(ctx: _Ctx, host: str, name: str) -> dict[str, str]:
    """node-exporter alerts (``instance`` is host:port) or kube-state-metrics ones (``node``)."""
    if name in {"KubeNodeNotReady", "NodeMemoryPressure", "KubeletPodStartUpLatencyHigh"}:
        return {"node": host, "job": "kube-state-metrics", "severity": _SEVERITY[name]}
    labels = {
        "instance": f"{host}:9100",
        "job": "node-exporter",
        "severity": _SEVERITY[name],
    }
    if name.startswith("NodeFilesystem"):
        labels |= {"device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/var/lib/containerd"}
    if name == "NodeNetworkReceiveErrs":
        labels["device"] = "eth0"
    return labels


def _dq_labels(ctx: _Ctx, digest: str, column: str | None = None) -> dict[str, str]:
    """Batch data-quality checks: the suite, the table, the batch (version) digest."""
    name = ctx.estate.dataset_name[digest]
    labels = {
        "dataset": digest if ctx.rng.random() < 0.5 else digest[:12],
        "table": f"analytics.{name}",
        "suite": f"{name}_ingest",
        "checkpoint": f"{name}_daily",
    }
    if column is not None:
        labels["column"] = column
    return labels


def _monitor_labels(
    ctx: _Ctx, model_node: str, column: str | None = None, dep: str | None = None
) -> dict[str, str]:
    """Model-monitoring alerts: the monitored model version, and a feature for per-column ones."""
    mname, version = model_node[6:].rsplit("/", 1)
    labels = {"model": mname, "version": version, "monitor": f"{mname}-production"}
    if column is not None:
        labels["feature"] = column
    if dep is not None:
        labels["deployment"] = dep
    return labels


# -- episodes --------------------------------------------------------------------------------

_SERVING_ALERTS = {"HighRequestLatency", "HighErrorRate", "InferenceQueueBacklog"}


def _add(
    ctx: _Ctx,
    name: str,
    labels: dict[str, str],
    subject: str,
    truth: str,
    span: tuple[datetime, datetime | None],
    *,
    source: str = "alertmanager",
    for_: float = 0.0,
    severity: str | None = None,
) -> None:
    """Record an episode, unless it clears before its rule fires or fires after the end."""
    start, end = span
    ready = start + timedelta(minutes=for_)
    if (end is not None and end <= ready) or ready >= START + HORIZON:
        return
    if end is not None and end >= START + HORIZON:
        end = None
    sev = severity or _SEVERITY.get(name, _DATA_SEVERITY)
    ctx.episodes.append(Episode(name, labels, sev, source, start, ready, end, truth, subject))


def _on_deployment(
    ctx: _Ctx,
    truth: str,
    dep: str,
    name: str,
    span: tuple[datetime, datetime | None],
    *,
    for_: float = 0.0,
    model: str | None = None,
) -> None:
    """An alert on a deployment, labelled as the tool raising it does; ``model``: the server
    tags its metrics with the model version it loaded, which the alert is then about."""
    if name in _SERVING_ALERTS:
        labels = _serving_labels(ctx, dep, name, model)
    elif name == "CanaryAnalysisFailed":
        labels = {"namespace": NAMESPACE, "rollout": dep, "deployment": dep}
        labels |= {"job": "argo-rollouts", "severity": "critical"}
    elif name == "ModelServerOOMKilled":
        labels = _kube_labels(ctx, dep, "CPUThrottlingHigh") | {"reason": "OOMKilled"}
        labels["severity"] = _SEVERITY[name]
    else:
        labels = _kube_labels(ctx, dep, name)
    subject = model if model is not None and name in _SERVING_ALERTS else f"deployment:{dep}"
    _add(ctx, name, labels, subject, truth, span, for_=for_)


def _on_host(
    ctx: _Ctx, truth: str, host: str, name: str, span: tuple[datetime, datetime | None], for_: float
) -> None:
    _add(ctx, name, _node_labels(ctx, host, name), f"host:{host}", truth, span, for_=for_)


def _on_dataset(
    ctx: _Ctx,
    truth: str,
    digest: str,
    name: str,
    span: tuple[datetime, datetime | None],
    *,
    column: str | None = None,
    extra: dict[str, str] | None = None,
    severity: str | None = None,
) -> None:
    labels = _dq_labels(ctx, digest, column) | (extra or {})
    _add(ctx, name, labels, f"dataset:{digest}", truth, span, source="api", severity=severity)


def _on_model(
    ctx: _Ctx,
    truth: str,
    model: str,
    name: str,
    span: tuple[datetime, datetime | None],
    *,
    column: str | None = None,
    severity: str = "warning",
) -> None:
    """A model monitor's alert on a model version, or on one of its input columns."""
    subject = model
    if column is not None:
        subject = f"feature:{column}@{ctx.estate.trained_on[model][0]}"
    labels = _monitor_labels(ctx, model, column)
    _add(ctx, name, labels, subject, truth, span, source="api", severity=severity)


def _m(lo: float, hi: float, rng: random.Random) -> timedelta:
    return timedelta(minutes=rng.uniform(lo, hi))


@dataclass(frozen=True)
class _FaultRun:
    """One fault being written: its truth, root, start, and when it is mitigated."""

    id: str
    root: str
    t0: datetime
    fixed: datetime
    drop_root: bool  # the root's own alerts are missing (nobody monitors it)
    rng: random.Random

    def span(
        self, lo: float, hi: float, lag: tuple[float, float] = (0, 8), *, lasting: bool = True
    ) -> tuple[datetime, datetime | None]:
        """Starts ``lo``..``hi`` minutes into the fault, clears ``lag`` minutes after the fix
        (or never, for monitors that only clear on the next retraining)."""
        start = self.t0 + _m(lo, hi, self.rng)
        return start, (self.fixed + _m(*lag, self.rng) if lasting else None)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


def _model_symptoms(
    ctx: _Ctx, run: _FaultRun, model: str, drift: tuple[float, float], perf: float, p: float = 0.85
) -> None:
    """Prediction drift (``p``), and performance once labels arrive, an hour or more late."""
    if run.chance(p):
        _on_model(ctx, run.id, model, "prediction_drift", run.span(*drift, (10, 40)))
    if run.chance(perf):
        span = run.span(60, 130, lasting=False)
        _on_model(ctx, run.id, model, "model_performance_degraded", span, severity="critical")


def _feature_symptoms(
    ctx: _Ctx, run: _FaultRun, model: str, cols: list[str], name: str, at: tuple[float, float]
) -> None:
    """A per-column monitor alert on each of ``cols`` the model uses."""
    for col in (c for c in cols if c in ctx.estate.trained_on[model][1]):
        _on_model(ctx, run.id, model, name, run.span(*at, (5, 30)), column=col)


def _bad_data(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    rng, est = ctx.rng, ctx.estate
    digest = run.root[8:]
    users = est.consumers(digest)
    cols = sorted({c for m in users for c in est.trained_on[m][1]})
    hit = rng.sample(cols, min(len(cols), rng.randint(1, 3)))
    root = not run.drop_root
    if variant == "schema":  # a renamed or retyped column: requests fail fast, checks run later
        if root:
            _on_dataset(ctx, run.id, digest, "expect_table_columns_to_match_set", run.span(5, 20))
        for m in users:
            for dep in est.deployments_of(m):
                if run.chance(0.7):
                    _on_deployment(ctx, run.id, dep, "HighErrorRate", run.span(1, 4), for_=2)
            _feature_symptoms(ctx, run, m, hit, "missing_values_share_high", (10, 30))
            _model_symptoms(ctx, run, m, (15, 45), 0.3)
    elif variant == "nulls":
        for col in hit if root else []:
            name = "expect_column_values_to_not_be_null"
            _on_dataset(ctx, run.id, digest, name, run.span(10, 35), column=col)
        for m in users:
            _feature_symptoms(ctx, run, m, hit, "missing_values_share_high", (8, 25))
            _model_symptoms(ctx, run, m, (20, 50), 0.5)
    elif variant == "late_load":  # the load missed its slot: stale features downstream
        extra = {"source": "raw", "loaded_at_field": "_loaded_at"}
        if root:
            _on_dataset(ctx, run.id, digest, "source_freshness_error", run.span(0, 10), extra=extra)
        if root and run.chance(0.5):
            name, sev = "dataset_row_count_anomaly", "warning"
            _on_dataset(ctx, run.id, digest, name, run.span(10, 30), severity=sev)
        for m in users:
            _feature_symptoms(ctx, run, m, hit, "feature_freshness_violation", (5, 20))
            if run.chance(0.4):
                _model_symptoms(ctx, run, m, (30, 60), 0.2)
    else:  # the inputs drift: a new upstream population or a changed unit
        if root:
            span = run.span(15, 45, (20, 60))
            name, extra = "dataset_drift_detected", {"reference": "training"}
            _on_dataset(ctx, run.id, digest, name, span, extra=extra, severity="warning")
        more = rng.sample(cols, min(len(cols), rng.randint(2, 4)))
        for m in users:
            _feature_symptoms(ctx, run, m, more, "feature_drift", (10, 40))
            _model_symptoms(ctx, run, m, (20, 60), 0.4)


def _feature_pipeline(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    est = ctx.estate
    col, digest = run.root[8:].split("@", 1)
    view = f"{est.dataset_name[digest]}_features"
    if not run.drop_root:
        # The materialization job names the feature by its column and the data set version
        # it computes it from: its own identifiers, and the contract's explicit node name.
        labels = {"feature": f"{col}@{digest}", "feature_view": view}
        labels["job"] = f"materialize-{view}"
        failed = variant == "job_failed"
        name = "feature_materialization_failed" if failed else "feature_value_out_of_range"
        _add(ctx, name, labels, run.root, run.id, run.span(0, 5), source="api")
    symptom = "feature_freshness_violation" if variant == "job_failed" else "feature_drift"
    for m in est.consumers(digest):
        if col in est.trained_on[m][1]:
            _feature_symptoms(ctx, run, m, [col], symptom, (10, 30))
            if run.chance(0.6):
                _model_symptoms(ctx, run, m, (20, 50), 0.3)


_NODE_FIRST = {
    "memory": "NodeMemoryPressure",
    "disk": "NodeFilesystemAlmostOutOfSpace",
    "not_ready": "KubeNodeNotReady",
}


def _host_degraded(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    rng = ctx.rng
    host = run.root[5:]
    if not run.drop_root:
        _on_host(ctx, run.id, host, _NODE_FIRST[variant], run.span(0, 2), 2)
        if variant == "memory" and run.chance(0.6):  # usage climbed before the pressure
            _on_host(ctx, run.id, host, "NodeMemoryHighUtilization", run.span(-5, 0), 15)
        if variant == "not_ready" and run.chance(0.5):
            _on_host(ctx, run.id, host, "KubeletPodStartUpLatencyHigh", run.span(2, 6), 15)
    for dep in ctx.estate.deployments_on(host):
        for _ in range(rng.randint(1, 2)):
            name = rng.choice(["KubePodCrashLooping", "KubePodNotReady"])
            _on_deployment(ctx, run.id, dep, name, run.span(1, 5), for_=rng.choice([5, 15]))
        if run.chance(0.7):
            name = "KubeDeploymentReplicasMismatch"
            _on_deployment(ctx, run.id, dep, name, run.span(1, 5), for_=15)
        if run.chance(0.8):
            _on_deployment(ctx, run.id, dep, "HighRequestLatency", run.span(0, 3), for_=5)
        if run.chance(0.5):
            _on_deployment(ctx, run.id, dep, "HighErrorRate", run.span(0, 3), for_=2)


def _bad_rollout(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    est = ctx.estate
    model = run.root
    if not run.drop_root:  # the version itself only shows through its monitors
        _model_symptoms(ctx, run, model, (10, 30), 0.5 if variant == "quality" else 0.2, 1.0)
    for dep in est.deployments_of(model):
        # A canary serving two versions tags its request metrics with the version, sometimes.
        tagged = model if len(est.serves[dep]) > 1 and run.chance(0.5) else None
        if variant == "errors" and run.chance(0.9):
            span = run.span(1, 4, (0, 3))
            _on_deployment(ctx, run.id, dep, "HighErrorRate", span, for_=2, model=tagged)
        if variant in {"errors", "slow"} and run.chance(0.6):
            span = run.span(1, 5, (0, 3))
            _on_deployment(ctx, run.id, dep, "HighRequestLatency", span, for_=5, model=tagged)
        if variant == "slow" and run.chance(0.4):
            _on_deployment(ctx, run.id, dep, "ModelServerOOMKilled", run.span(2, 10, (0, 3)))
        if dep.endswith("-canary") and run.chance(0.6):
            _on_deployment(ctx, run.id, dep, "CanaryAnalysisFailed", run.span(5, 12, (0, 2)))


_MISCONFIG_ALERTS = {
    "bad_config": ["KubeContainerWaiting", "KubePodCrashLooping", "KubeDeploymentRolloutStuck"],
    "low_memory_limit": ["KubePodCrashLooping", "ModelServerOOMKilled", "HighErrorRate"],
    "replicas": ["KubeDeploymentReplicasMismatch", "HighRequestLatency", "InferenceQueueBacklog"],
}


def _deploy_misconfig(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    dep = run.root[11:]
    for k, name in enumerate(_MISCONFIG_ALERTS[variant]):
        if k == 0 or run.chance(0.85):
            for_ = ctx.rng.choice([2, 5, 15])
            _on_deployment(ctx, run.id, dep, name, run.span(1, 6, (0, 4)), for_=for_)
    # A wrong setting in the serving config (a preprocessing flag, a threshold) also shifts
    # what the model predicts.
    for m in ctx.estate.serves[dep]:
        if variant == "bad_config" and run.chance(0.4):
            _model_symptoms(ctx, run, m, (15, 40), 0.0)


def _traffic_surge(ctx: _Ctx, run: _FaultRun, variant: str) -> None:
    est = ctx.estate
    dep = run.root[11:]
    _on_deployment(ctx, run.id, dep, "HighRequestLatency", run.span(0, 3), for_=5)
    if run.chance(0.7):
        _on_deployment(ctx, run.id, dep, "KubeHpaMaxedOut", run.span(3, 10), for_=15)
    if run.chance(0.6):
        _on_deployment(ctx, run.id, dep, "CPUThrottlingHigh", run.span(2, 8), for_=15)
    if variant == "with_errors" and run.chance(0.8):
        _on_deployment(ctx, run.id, dep, "HighErrorRate", run.span(2, 6), for_=2)
    # The replicas' nodes run hot, and their other tenants slow down.
    for host in est.runs_on[dep]:
        if run.chance(0.6):
            _on_host(ctx, run.id, host, "NodeCPUHighUsage", run.span(3, 10), 15)
        for other in est.deployments_on(host):
            if other != dep and run.chance(0.3):
                _on_deployment(ctx, run.id, other, "HighRequestLatency", run.span(5, 15), for_=5)


_WRITERS: dict[str, tuple[Callable[[_Ctx, _FaultRun, str], None], tuple[str, ...]]] = {
    "bad_data": (_bad_data, ("schema", "nulls", "late_load", "drifting_inputs")),
    "feature_pipeline": (_feature_pipeline, ("job_failed", "bad_transform")),
    "host_degraded": (_host_degraded, ("memory", "disk", "not_ready")),
    "bad_rollout": (_bad_rollout, ("errors", "slow", "quality")),
    "deploy_misconfig": (_deploy_misconfig, ("bad_config", "low_memory_limit", "replicas")),
    "traffic_surge": (_traffic_surge, ("latency_only", "with_errors")),
}

# Kinds whose root alert can go missing (the others alert on the root node by nature).
_ROOT_CAN_BE_MISSING = {"bad_data", "feature_pipeline", "host_degraded", "bad_rollout"}


def _pick_root(rng: random.Random, est: Estate, kind: str, taken: set[str]) -> str | None:
    served = est.served_models()
    if kind == "bad_data":
        options = sorted({f"dataset:{est.trained_on[m][0]}" for m in served})
    elif kind == "feature_pipeline":
        options = sorted(
            {f"feature:{c}@{est.trained_on[m][0]}" for m in served for c in est.trained_on[m][1]}
        )
    elif kind == "host_degraded":
        options = [f"host:{h}" for h in est.hosts if est.deployments_on(h)]
    elif kind == "bad_rollout":
        options = [
            f"model:{m}/{vs[-1]}"
            for m, vs in est.models.items()
            if est.deployments_of(f"model:{m}/{vs[-1]}")
        ]
    else:
        options = [
            f"deployment:{d}"
            for d in est.serves
            if kind != "traffic_surge" or not d.endswith("-canary")
        ]
    options = [o for o in options if o not in taken]
    return rng.choice(options) if options else None


def _faults(ctx: _Ctx, level: int, missing_roots: bool) -> list[Fault]:
    rng = ctx.rng
    count = {1: 1, 2: 2, 3: rng.choice([2, 3])}[level]
    first = START + _m(20, 60, rng)
    spread = {1: 0, 2: 15, 3: 30}[level]
    faults: list[Fault] = []
    taken: set[str] = set()
    while len(faults) < count:
        kind = rng.choice(FAULT_KINDS)
        root = _pick_root(rng, ctx.estate, kind, taken)
        if root is None:
            continue
        taken.add(root)
        writer, variants = _WRITERS[kind]
        variant = rng.choice(variants)
        t0 = first if not faults else first + _m(0, spread, rng)
        drop = missing_roots and kind in _ROOT_CAN_BE_MISSING and rng.random() < 0.25
        run = _FaultRun(f"fault-{len(faults)}", root, t0, t0 + _m(40, 110, rng), drop, rng)
        before = len(ctx.episodes)
        writer(ctx, run, variant)
        if not any(e.ready_at + GROUP_WAIT < START + HORIZON for e in ctx.episodes[before:]):
            # Nothing reported it: a fault nobody can see is not part of the scenario.
            del ctx.episodes[before:]
            continue
        alerted = any(e.subject == root for e in ctx.episodes[before:])
        faults.append(Fault(run.id, kind, variant, root, t0, alerted))
    return faults


# -- noise -----------------------------------------------------------------------------------

_HOST_NOISE = [
    "NodeFilesystemSpaceFillingUp",
    "NodeClockNotSynchronising",
    "NodeNetworkReceiveErrs",
    "NodeMemoryHighUtilization",
    "NodeCPUHighUsage",
]
_DEPLOYMENT_NOISE = [
    "CPUThrottlingHigh",
    "KubePodCrashLooping",
    "HighRequestLatency",
    "KubePodNotReady",
    "HighErrorRate",
]
_DATASET_NOISE = [
    "dataset_row_count_anomaly",
    "expect_column_values_to_be_between",
    "source_freshness_warn",
]


def _noise_alert(ctx: _Ctx, node: str, truth: str, span: tuple[datetime, datetime]) -> None:
    """One unrelated alert on ``node``: a blip, a false alarm, a slow disk filling up."""
    rng, est = ctx.rng, ctx.estate
    kind, name = node.split(":", 1)
    if kind == "host":
        _on_host(ctx, truth, name, rng.choice(_HOST_NOISE), span, 5)
    elif kind == "deployment":
        alert = rng.choice(_DEPLOYMENT_NOISE)
        _on_deployment(ctx, truth, name, alert, span, for_=rng.choice([0, 2, 5]))
    elif kind == "feature":
        col, digest = name.split("@", 1)
        users = [m for m in est.consumers(digest) if col in est.trained_on[m][1]]
        if users:
            alert = rng.choice(["feature_drift", "missing_values_share_high"])
            _on_model(ctx, truth, rng.choice(users), alert, span, column=col)
    elif kind == "dataset":
        alert = rng.choice(_DATASET_NOISE)
        column = rng.choice(est.columns[name]) if alert.startswith("expect") else None
        _on_dataset(ctx, truth, name, alert, span, column=column, severity="warning")
    elif kind == "model" and node in est.served_models():
        _on_model(ctx, truth, node, "prediction_drift", span)


def _noise(ctx: _Ctx, level: int, faults: list[Fault], graph: LineageGraph) -> None:
    rng = ctx.rng
    nodes = graph.nodes
    background = {1: (2, 4), 2: (4, 8), 3: (10, 18)}[level]
    n = 0
    for _ in range(rng.randint(*background)):
        start = START + _m(0, HORIZON.total_seconds() / 60 - 10, rng)
        _noise_alert(ctx, rng.choice(nodes), f"noise-{n}", (start, start + _m(4, 40, rng)))
        n += 1
    if level == 3:
        # Unrelated trouble next to a fault: close in time, a hop or two away in the graph.
        for _ in range(rng.randint(2, 4)):
            fault = rng.choice(faults)
            near = [x for x in nodes if x != fault.root and (graph.hops(x, fault.root) or 9) <= 2]
            if near:
                start = fault.started_at + _m(-10, 15, rng)
                span = (start, start + _m(5, 30, rng))
                _noise_alert(ctx, rng.choice(near), f"noise-{n}", span)
                n += 1
    if level >= 2:
        _flapper(ctx)


def _flapper(ctx: _Ctx) -> None:
    """One alert that fires for a few minutes and clears, all day long (one fingerprint)."""
    rng, est = ctx.rng, ctx.estate
    if rng.random() < 0.5:
        host = rng.choice([h for h in est.hosts if est.deployments_on(h)])
        name, node = "NodeClockNotSynchronising", f"host:{host}"
        labels = _node_labels(ctx, host, name)
    else:
        dep = rng.choice(sorted(est.serves))
        name, node = "CPUThrottlingHigh", f"deployment:{dep}"
        labels = _kube_labels(ctx, dep, name)
    t = START + _m(0, 10, rng)
    while t < START + HORIZON:
        end = t + _m(2, 8, rng)
        _add(ctx, name, labels, node, "flapper", (t, end))
        t = end + _m(5, 25, rng)


# -- delivery --------------------------------------------------------------------------------


def _route(ctx: _Ctx) -> list[tuple[datetime, AlertIn, int]]:
    """Alertmanager: groups by name and namespace, a group wait, resends on each interval."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ep in enumerate(ctx.episodes):
        groups[(ep.name, ep.labels.get("namespace", ""))].append(i)
    out: list[tuple[datetime, AlertIn, int]] = []
    end = START + HORIZON
    for members in groups.values():
        members.sort(key=lambda i: ctx.episodes[i].ready_at)
        flush: datetime | None = None  # the group's next flush; None while it has no alerts
        sent_resolved: set[int] = set()
        pending = list(members)
        active: list[int] = []
        while pending or active:
            if flush is None:
                i = pending.pop(0)
                active.append(i)
                flush = ctx.episodes[i].ready_at + GROUP_WAIT
            while pending and ctx.episodes[pending[0]].ready_at <= flush:
                active.append(pending.pop(0))
            if flush >= end:
                break
            for i in active:
                ep = ctx.episodes[i]
                done = ep.ends_at is not None and ep.ends_at <= flush
                if done and i not in sent_resolved:
                    sent_resolved.add(i)
                    out.append((flush, _alert(ep, ep.ends_at), i))
                elif not done:
                    out.append((flush, _alert(ep, None, seen=flush), i))
            active = [i for i in active if i not in sent_resolved]
            flush = flush + GROUP_INTERVAL if active else None
    return out


def _alert(ep: Episode, ended: datetime | None, seen: datetime | None = None) -> AlertIn:
    return AlertIn(
        name=ep.name,
        labels=ep.labels,
        severity=ep.severity,
        status="resolved" if ended is not None else "firing",
        source=ep.source,
        starts_at=ep.starts_at,
        last_seen_at=ended or seen,
        ends_at=ended,
    )


def _deliver(ctx: _Ctx) -> list[Notification]:
    rng = ctx.rng
    sent = []
    for flush, alert, i in _route(ctx):
        delay = timedelta(seconds=rng.uniform(0.05, 4))
        if rng.random() < LATE_DELIVERY:
            delay += _m(1, 6, rng)  # a failed webhook call, retried
        sent.append(Notification(alert, flush + delay, ctx.episodes[i].truth, i))
    sent.sort(key=lambda n: (n.delivered_at, n.episode))
    return sent


def generate(seed: int, level: int, *, noise: bool = True, missing_roots: bool = True) -> Scenario:
    """The scenario of a seed and level (the same every time).

    Args:
        seed: Draws the estate, the faults, the noise and the delivery.
        level: 1, 2 or 3 (see the module docstring).
        noise: False leaves out background alerts, near-fault noise and the flapper.
        missing_roots: False keeps every root alert (none goes unmonitored).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    rng = random.Random(f"aiops-blind/{seed}/{level}")
    estate = draw_estate(rng)
    ctx = _Ctx(rng, estate)
    faults = _faults(ctx, level, missing_roots)
    if noise:
        _noise(ctx, level, faults, LineageGraph(estate.edges))
    notifications = _deliver(ctx)
    return Scenario(seed, level, estate, faults, list(ctx.episodes), notifications)
