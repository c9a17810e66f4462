"""Scoring alert correlation on :mod:`opsloop.testing.aiops_blind` scenarios, by either path.

* Offline: every alert episode of a scenario (one fingerprint from start to end), as its latest
  notification, goes to :func:`~opsloop.aiops.correlation.correlate` at once. The unit scored
  is the episode.
* Store: notifications go through :func:`~opsloop.aiops.incidents.ingest_alerts` in one-minute
  delivery batches, into SQLite. The unit scored is the stored alert row.

Grouping is scored by pairs of units: a pair is predicted when both are in one incident, and
true when both have one truth (a fault, a noise episode, or the flapper). Precision, recall and
F1 pool the pair counts over scenarios. Root cause: for each fault, the incident holding most
of its units, and whether the fault's true root is first, or in the top 3, of its ranking.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.aiops.alerts import list_alerts
from opsloop.aiops.correlation import correlate
from opsloop.aiops.incidents import ingest_alerts, list_incidents
from opsloop.store import open_store
from opsloop.testing.aiops_hard import pairwise_counts

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from opsloop.testing.aiops_blind import Scenario

__all__ = ["Score", "pair_counts", "run_offline", "run_store"]


@dataclass
class Score:
    """Pair counts and root-cause hits, summed over scenarios with ``+``."""

    tp: int = 0  # pairs in one incident with one truth
    predicted: int = 0  # pairs in one incident
    actual: int = 0  # pairs with one truth
    units: int = 0
    faults: int = 0
    first: int = 0
    top3: int = 0
    faults_detail: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: Score) -> Score:
        return Score(
            self.tp + other.tp,
            self.predicted + other.predicted,
            self.actual + other.actual,
            self.units + other.units,
            self.faults + other.faults,
            self.first + other.first,
            self.top3 + other.top3,
            self.faults_detail + other.faults_detail,
        )

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are true (1.0 when nothing is grouped)."""
        return self.tp / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs that are predicted (1.0 when there are none)."""
        return self.tp / self.actual if self.actual else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def root_first(self) -> float:
        """Share of faults whose true root is ranked first."""
        return self.first / self.faults if self.faults else 0.0

    @property
    def root_top3(self) -> float:
        """Share of faults whose true root is in the top 3."""
        return self.top3 / self.faults if self.faults else 0.0


def pair_counts(units: Sequence[tuple[Hashable | None, str]]) -> tuple[int, int, int]:
    """``(true positive, predicted, actual)`` pair counts of ``(incident, truth)`` units; a
    unit in no incident (None) is in a group of its own (counted as
    :func:`~opsloop.testing.aiops_hard.pairwise_counts` counts them)."""
    groups = [(g,) if g is not None else ("alone", k) for k, (g, _) in enumerate(units)]
    tp, fp, fn = pairwise_counts([t for _, t in units], groups)
    return tp, tp + fp, tp + fn


def _score(
    scenario: Scenario,
    units: list[tuple[Hashable | None, str, list[str]]],
    roots: dict[Hashable, list[str]],
) -> Score:
    tp, predicted, actual = pair_counts([(g, t) for g, t, _ in units])
    score = Score(tp, predicted, actual, units=len(units), faults=len(scenario.faults))
    for fault in scenario.faults:
        held = Counter(g for g, t, _ in units if t == fault.id and g is not None)
        group = held.most_common(1)[0][0] if held else None
        ranked = roots.get(group, []) if group is not None else []
        score.first += ranked[:1] == [fault.root]
        score.top3 += fault.root in ranked[:3]
        names = sorted({n for g, _, ns in units if g == group and group is not None for n in ns})
        truths = Counter(t for g, t, _ in units if g == group and group is not None)
        score.faults_detail.append(
            {
                "seed": scenario.seed,
                "level": scenario.level,
                "fault": fault.id,
                "kind": fault.kind,
                "variant": fault.variant,
                "root": fault.root,
                "root_alerted": fault.root_alerted,
                "ranked": ranked[:5],
                "incident_alerts": names,
                "incident_truths": dict(truths),
                "fault_units": sum(1 for _, t, _ in units if t == fault.id),
                "fault_units_in_incident": held.get(group, 0) if group is not None else 0,
            }
        )
    return score


def run_offline(scenario: Scenario) -> Score:
    """Correlate every alert episode at once, each as its latest notification (what a store
    holds once the resends are deduplicated: ``correlate`` takes distinct alerts), and score
    the drafts by episode."""
    latest: dict[int, int] = {}
    for i, n in enumerate(scenario.notifications):
        was = latest.get(n.episode)
        if was is None or n.alert.seen_at >= scenario.notifications[was].alert.seen_at:
            latest[n.episode] = i
    order = sorted(latest, key=lambda e: latest[e])
    drafts = correlate([scenario.notifications[latest[e]].alert for e in order], scenario.graph())
    where: dict[int, int] = {}
    for d, draft in enumerate(drafts):
        for i in draft.alert_indices:
            where[order[i]] = d
    units: list[tuple[Hashable | None, str, list[str]]] = []
    for e in order:
        episode = scenario.episodes[e]
        units.append((where.get(e), episode.truth, [episode.name]))
    roots: dict[Hashable, list[str]] = {
        d: [rc.node for rc in draft.summary.root_causes] for d, draft in enumerate(drafts)
    }
    return _score(scenario, units, roots)


def run_store(scenario: Scenario, folder: Path | None = None) -> Score:
    """Ingest the notifications in one-minute delivery batches into SQLite, and score the
    stored alert rows and incidents."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'alerts.db'}", actor="benchmark")
        try:
            graph = scenario.graph()
            row_truths: dict[int, Counter[str]] = defaultdict(Counter)
            for now, indices in scenario.batches():
                batch = [scenario.notifications[i] for i in indices]
                result = ingest_alerts(store, [n.alert for n in batch], graph, now=now)
                for n, row in zip(batch, result.alerts, strict=True):
                    row_truths[row.id][n.truth] += 1
            rows = list_alerts(store, limit=1_000_000)
            incidents = list_incidents(store, limit=1_000_000)
        finally:
            store.close()
    units: list[tuple[Hashable | None, str, list[str]]] = [
        (row.incident_id, row_truths[row.id].most_common(1)[0][0], [row.name])
        for row in rows
        if row.id in row_truths
    ]
    roots: dict[Hashable, list[str]] = {
        inc.id: [str(rc["node"]) for rc in inc.root_causes] for inc in incidents
    }
    return _score(scenario, units, roots)
