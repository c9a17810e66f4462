"""A flood of alerts on a node that runs many deployments: correlating it stays bounded.

Every slow deployment may be the busy neighbour of the others on its node, so a flood of
latency alerts across a crowded node once made choosing causes grow with the square of the
node's tenants; a storm over a node of 200 deployments ran out of memory.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsloop.aiops.alerts import AlertIn, list_alerts
from opsloop.aiops.incidents import ingest_alerts, list_incidents
from opsloop.aiops.lineage import LineageGraph
from opsloop.store import open_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _crowded(tenants: int) -> LineageGraph:
    edges = []
    for d in range(tenants):
        edges += [(f"model:m{d}/1", f"deployment:d{d}"), ("host:big", f"deployment:d{d}")]
    return LineageGraph(edges)


def test_a_latency_flood_on_a_crowded_node_is_correlated_in_bounded_memory(
    tmp_path: Path,
) -> None:
    graph = _crowded(200)
    flood = [
        AlertIn(
            name="latency_p99_high",
            labels={"deployment": f"d{k % 200}", "n": str(k)},
            starts_at=T0 + timedelta(seconds=k * 0.5),
            last_seen_at=T0 + timedelta(seconds=k * 0.5),
        )
        for k in range(1000)
    ]
    store = open_store(f"sqlite:///{tmp_path / 'flood.db'}", actor="tester")
    tracemalloc.start()
    try:
        for k in range(0, len(flood), 100):
            batch = flood[k : k + 100]
            ingest_alerts(store, batch, graph, now=batch[-1].seen_at)
        _, peak = tracemalloc.get_traced_memory()
        assert len(list_alerts(store, limit=5000)) == 1000
        assert list_incidents(store, limit=5000)
    finally:
        tracemalloc.stop()
        store.close()
    # Growing with the square of the tenants this ran for minutes through gigabytes; bounded,
    # it takes about 16 MB.
    assert peak < 100 * 2**20, peak
