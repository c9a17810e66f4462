"""Correlation benchmark: noise reduction and root-cause accuracy on seeded scenarios.

Generates seeded scenarios over a simulated estate (4 datasets, 6 models, 8 deployments, 4
hosts; see ``opsloop.testing.aiops_scenarios.simulate``): a drifted dataset (feature drift on
several columns, prediction drift, a quality drop, sometimes a data-quality alert), a failing
host (latency and errors on every deployment it runs, sometimes a CPU alert), a bad model
version (a quality drop only) and a cost spike, in turn, plus one unrelated noise alert per
scenario on average. Every alert repeats at its monitor's cadence (1, 5 or 15 minutes) while
it fires and then resolves.

Two noise settings run: noise between scenarios ("separate"), and 30 % of the noise inside
scenarios on lineage unrelated to the scenario's root cause ("overlapping").

Sides, all in this one run on the same alerts:

* **opsloop (store)** — the real path: notifications fed to ``ingest_alerts`` in five-minute
  batches against a SQLite store (deduplication, correlation with open incidents,
  auto-resolution).
* **opsloop (pure)** — ``correlate`` over the deduplicated alerts at once.
* **Alertmanager-style grouping** — an in-process emulation of Alertmanager's ``group_by``
  (alerts with equal grouping labels while they fire within ``group_interval`` of each other
  form one notification group), with ``group_by: [alertname, deployment]`` and
  ``[deployment]``. Alertmanager ranks no root cause, so its "root cause" is the node of a
  group's first alert.
* **time window only** — single-linkage on time alone, ignoring lineage.
* **dedup only** — one incident per distinct alert.

Reported per side: notifications in, distinct alerts, incidents out, reduction against
notifications (the target: >= 90 %), against distinct alerts, and against the scenarios'
distinct alerts alone (noise left out: a noise alert is rightly an incident of its own); the
share of scenarios whose main incident ranks the true root cause first (target: >= 90 %),
incidents per scenario, and purity (share of incidents holding one scenario's or one noise
alert's alerts only).

Run from the repository root::

    .venv/bin/python benchmarks/correlation.py                 # 200 scenarios
    .venv/bin/python benchmarks/correlation.py --scenarios 60  # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from opsloop.aiops.alerts import AlertIn, list_alerts
from opsloop.aiops.correlation import DEFAULT_WINDOW, correlate, subject_of
from opsloop.aiops.incidents import ingest_alerts, list_incidents
from opsloop.store import open_store
from opsloop.testing.aiops_scenarios import Simulation, score_incidents, simulate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

TARGET_REDUCTION = 0.90
TARGET_ROOT_CAUSE = 0.90
GROUP_INTERVAL = timedelta(minutes=5)

Episode = tuple[str, datetime]


def dedupe(sim: Simulation) -> tuple[list[AlertIn], list[str]]:
    """Distinct alerts (firing episodes) with their latest sighting, and their truth ids."""
    latest: dict[Episode, AlertIn] = {}
    truth: dict[Episode, str] = {}
    for alert, owner in zip(sim.alerts, sim.truth, strict=True):
        if alert.status != "firing":
            continue
        key = (alert.fingerprint, alert.starts_at)
        prev = latest.get(key)
        if prev is None or alert.seen_at > prev.seen_at:
            latest[key] = alert
        truth[key] = owner
    keys = sorted(latest, key=lambda k: (latest[k].starts_at, k))
    return [latest[k] for k in keys], [truth[k] for k in keys]


def score_groups(
    sim: Simulation,
    truths: Sequence[str],
    groups: Sequence[Sequence[int]],
    roots: Sequence[str | None],
) -> dict[str, Any]:
    inc_of: dict[str, list[int]] = defaultdict(list)
    for n, members in enumerate(groups):
        for i in members:
            inc_of[truths[i]].append(n)
    return score_incidents(sim, inc_of, {n: r or "" for n, r in enumerate(roots)})


def first_alert_root(sim: Simulation, alerts: Sequence[AlertIn], members: Sequence[int]) -> str:
    first = min(members, key=lambda i: alerts[i].starts_at)
    return subject_of(alerts[first], sim.graph) or ""


def alertmanager_groups(alerts: Sequence[AlertIn], group_by: Sequence[str]) -> list[list[int]]:
    """Alertmanager's grouping: equal group labels, firing within the group interval."""
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, a in enumerate(alerts):
        labels = {"alertname": a.name, **a.labels}
        by_key[tuple(labels.get(k, "") for k in group_by)].append(i)
    groups: list[list[int]] = []
    for members in by_key.values():
        members.sort(key=lambda i: alerts[i].starts_at)
        current: list[int] = []
        until: datetime | None = None
        for i in members:
            if until is not None and alerts[i].starts_at > until + GROUP_INTERVAL:
                groups.append(current)
                current = []
                until = None
            current.append(i)
            seen = alerts[i].seen_at
            until = seen if until is None else max(until, seen)
        if current:
            groups.append(current)
    return groups


def time_only_groups(alerts: Sequence[AlertIn], window: timedelta) -> list[list[int]]:
    """Single linkage on time alone: each alert joins the group whose interval it nears."""
    order = sorted(range(len(alerts)), key=lambda i: alerts[i].starts_at)
    groups: list[list[int]] = []
    until: datetime | None = None
    for i in order:
        if until is None or alerts[i].starts_at > until + window:
            groups.append([])
            until = alerts[i].seen_at
        groups[-1].append(i)
        until = max(until, alerts[i].seen_at)
    return groups


def run_store(
    sim: Simulation, window: timedelta, progress: Progress
) -> tuple[dict[str, Any], float]:
    """The real path: five-minute batches through ``ingest_alerts`` into SQLite."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}", actor="benchmark")
        try:
            batches: list[tuple[list[AlertIn], list[str]]] = []
            slot = None
            for alert, owner in zip(sim.alerts, sim.truth, strict=True):
                now = int(alert.seen_at.timestamp() // 300)
                if slot != now:
                    batches.append(([], []))
                    slot = now
                batches[-1][0].append(alert)
                batches[-1][1].append(owner)
            task = progress.add_task("ingest (SQLite)", total=len(batches))
            truth_of: dict[int, str] = {}
            started = time.perf_counter()
            for alerts, owners in batches:
                result = ingest_alerts(store, alerts, sim.graph, window=window)
                for row, owner in zip(result.alerts, owners, strict=True):
                    truth_of[row.id] = owner
                progress.advance(task)
            took = time.perf_counter() - started
            inc_of: dict[str, list[int]] = defaultdict(list)
            for row in list_alerts(store, limit=10_000_000):
                inc_of[truth_of[row.id]].append(row.incident_id or -row.id)
            top = {i.id: i.root_cause or "" for i in list_incidents(store, limit=10_000_000)}
            return score_incidents(sim, inc_of, top), took
        finally:
            store.close()


def run_variant(
    name: str, sim: Simulation, window: timedelta, console: Console
) -> list[tuple[str, dict[str, Any], float]]:
    alerts, truths = dedupe(sim)
    rows: list[tuple[str, dict[str, Any], float]] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        score, took = run_store(sim, window, progress)
    rows.append(("opsloop (store)", score, took))

    started = time.perf_counter()
    drafts = correlate(alerts, sim.graph, window)
    took = time.perf_counter() - started
    rows.append(
        (
            "opsloop (pure)",
            score_groups(
                sim,
                truths,
                [d.alert_indices for d in drafts],
                [d.summary.root_causes[0].node if d.summary.root_causes else None for d in drafts],
            ),
            took,
        )
    )

    def baseline(label: str, make: Callable[[], list[list[int]]]) -> None:
        t0 = time.perf_counter()
        groups = make()
        elapsed = time.perf_counter() - t0
        roots = [first_alert_root(sim, alerts, g) for g in groups]
        rows.append((label, score_groups(sim, truths, groups, roots), elapsed))

    baseline(
        "AM group_by alertname,deployment",
        lambda: alertmanager_groups(alerts, ["alertname", "deployment"]),
    )
    baseline("AM group_by deployment", lambda: alertmanager_groups(alerts, ["deployment"]))
    baseline("time window only", lambda: time_only_groups(alerts, window))
    baseline("dedup only", lambda: [[i] for i in range(len(alerts))])

    table = Table(title=f"{name}: {len(sim.scenarios)} scenarios", title_justify="left")
    for col in (
        "method",
        "notifications",
        "alerts",
        "incidents",
        "reduction",
        "vs alerts",
        "vs scen. alerts",
        "RC first",
        "inc/scen.",
        "purity",
        "seconds",
    ):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for label, s, secs in rows:
        table.add_row(
            label,
            f"{s['notifications']:,}",
            f"{s['alerts']:,}",
            f"{s['incidents']:,}",
            f"{s['reduction']:.1%}",
            f"{s['alert_reduction']:.1%}",
            f"{s['scenario_alert_reduction']:.1%}",
            f"{s['root_cause_first']:.1%}",
            f"{s['fragmentation']:.2f}",
            f"{s['purity']:.1%}",
            f"{secs:.2f}",
        )
    console.print(table)
    return rows


def write_chart(results: dict[str, list[tuple[str, dict[str, Any], float]]], path: Path) -> Path:
    # Lazy imports here and below (noqa: PLC0415) of matplotlib: each loads only where it is used,
    # so importing this module stays light.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    variants = list(results)
    fig, axes = plt.subplots(1, len(variants), figsize=(7 * len(variants), 4.8), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        rows = [r for r in results[variant] if r[0] != "opsloop (pure)"]
        labels = [r[0] for r in rows]
        x = range(len(rows))
        width = 0.2
        series = (
            ("reduction vs notifications", "reduction", "#4c72b0"),
            ("reduction vs distinct alerts", "alert_reduction", "#55a868"),
            ("true root cause ranked first", "root_cause_first", "#c44e52"),
            ("purity", "purity", "#8172b2"),
        )
        for k, (label, key, color) in enumerate(series):
            ax.bar(
                [i + (k - 1.5) * width for i in x],
                [r[1][key] for r in rows],
                width,
                label=label,
                color=color,
            )
        ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(variant)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--window-min", type=float, default=DEFAULT_WINDOW.total_seconds() / 60)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    window = timedelta(minutes=args.window_min)
    results = {}
    for name, overlap in (("separate noise", 0.0), ("overlapping noise (30 %)", 0.3)):
        sim = simulate(args.scenarios, seed=args.seed, overlapping_noise=overlap)
        results[name] = run_variant(name, sim, window, console)

    main_score = results["separate noise"][0][1]
    ok = (
        main_score["reduction"] >= TARGET_REDUCTION
        and main_score["root_cause_first"] >= TARGET_ROOT_CAUSE
    )
    am = dict((r[0], r[1]) for r in results["separate noise"])["AM group_by alertname,deployment"]
    ratio = am["incidents"] / main_score["incidents"] if main_score["incidents"] else float("nan")
    console.print(
        f"opsloop (store), separate noise: {main_score['reduction']:.1%} fewer incidents than "
        f"notifications ({main_score['alert_reduction']:.1%} fewer than distinct alerts), true "
        f"root cause first in {main_score['root_cause_first']:.1%} of scenarios — target "
        f"{'MET' if ok else 'MISSED'} (>= {TARGET_REDUCTION:.0%} and >= {TARGET_ROOT_CAUSE:.0%})"
    )
    console.print(
        f"Alertmanager-style grouping opens {ratio:.2f}x as many incidents "
        f"({am['incidents']} against {main_score['incidents']})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    chart = write_chart(results, args.out / "correlation.png")
    summary = {
        variant: {label: {**score, "seconds": secs} for label, score, secs in rows}
        for variant, rows in results.items()
    }
    (args.out / "correlation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    console.print(f"chart: {chart}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
