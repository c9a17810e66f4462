"""Sync events as root-cause evidence: what is stored in them cannot break correlation.

The details of a ``deployment.synced`` event are whatever the store holds; correlation reads
them to learn which model versions went live (see ``opsloop.aiops.incidents._rollouts``).
Malformed or hostile details are no evidence, never an error; of a flood of syncs, the latest
rollout counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import get_incident, ingest_alerts
from opsloop.aiops.lineage import LineageGraph
from opsloop.store import Store, open_store

GRAPH = LineageGraph([("model:m/1", "deployment:dep"), ("host:h", "deployment:dep")])


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


def _sync(store: Store, diff: dict[str, Any], **details: Any) -> None:
    store.deployments.record_sync(
        "dep",
        revision=None,
        started_at=datetime.now(UTC),
        result="Succeeded",
        diff=diff,
        details=details,
    )


def _trouble(store: Store) -> str | None:
    now = datetime.now(UTC)
    alerts = [
        AlertIn(name=n, labels={"deployment": "dep"}, starts_at=now + timedelta(minutes=k))
        for k, n in ((1, "HighRequestLatency"), (2, "HighErrorRate"))
    ]
    (inc,) = ingest_alerts(store, alerts, GRAPH, now=now + timedelta(minutes=3)).opened
    return get_incident(store, inc).root_cause


@pytest.mark.parametrize(
    "diff, details",
    [
        # Before and after that are not tables.
        ({"version": ["not", "a", "table"]}, {"model": "m"}),
        # Traffic weights that are no numbers, or NaN and infinities, or negative.
        ({"traffic": {"live": {}, "desired": {"9": "lots", "8": None, "7": -5}}}, {}),
        ({"traffic": {"live": {}, "desired": {"6": float("nan")}}}, {}),
        # A model name that is no string, a version the lineage does not know.
        ({"version": {"live": 1, "desired": 7}}, {"model": {"$gt": ""}, "version": 7}),
        # A failed sync that claims a new version.
        ({"version": {"live": 1, "desired": 2}}, {"model": "m", "result": "Failed"}),
    ],
)
def test_malformed_sync_details_are_no_evidence(
    store: Store, diff: dict[str, Any], details: dict[str, Any]
) -> None:
    _sync(store, diff, **details)
    assert _trouble(store) == "deployment:dep"


def test_a_flood_of_syncs_leaves_the_latest_rollout_the_cause(store: Store) -> None:
    # 300 syncs, each sending traffic to a new version, each with a wide traffic table.
    wide = {str(v): 0.0 for v in range(300)}
    for v in range(2, 302):
        _sync(store, {"traffic": {"live": wide, "desired": {**wide, str(v): 1.0}}}, model="m")
    assert _trouble(store) == "model:m/301"
