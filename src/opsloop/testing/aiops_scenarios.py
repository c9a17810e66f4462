"""Seeded incident scenarios for measuring correlation: noise reduction and root-cause accuracy.

Not production code: :func:`simulate` generates a small estate (datasets → features → model
versions → deployments ← hosts) and alert notifications of known problems in it, with unrelated
noise between or inside them; :func:`score_incidents` scores how an incident assignment
groups those notifications and ranks their true root causes. The correlation tests and
``benchmarks/correlation.py`` use both; a package that changes correlation can measure itself
the same way::

    from opsloop.testing.aiops_scenarios import score_incidents, simulate

    sim = simulate(40, seed=1)
    # feed sim.alerts to the correlation under test, then score its incidents
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.correlation import subject_of
from opsloop.aiops.lineage import LineageGraph
from opsloop.errors import AIOpsError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["COLUMNS", "Scenario", "Simulation", "score_incidents", "simulate"]

COLUMNS = (
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
"""Column names the simulated data sets draw from."""


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
            d: sorted(rng.choice(COLUMNS, size=int(rng.integers(8, 13)), replace=False).tolist())
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
