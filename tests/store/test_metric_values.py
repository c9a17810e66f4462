"""Metric values on every backend: NaN and infinities are kept, bad points are data errors."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text

from opsloop.errors import NotFoundError, TrackingError, is_data_error
from opsloop.store import Store, open_store
from opsloop.store.migrate import alembic_config

NAN, INF = math.nan, math.inf


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


def test_nan_and_infinities_round_trip(store: Store) -> None:
    run = store.runs.create("m")
    points = [("loss", float(i), i, 1000 + i) for i in range(10)]
    points[4] = ("loss", NAN, 4, 1004)
    points[6] = ("loss", INF, 6, 1006)
    points[7] = ("loss", -INF, 7, 1007)
    store.runs.log_metric_points(
        run.id, [*points, ("last_nan", 1.0, 0, 1), ("last_nan", NAN, 1, 2)]
    )
    values = [p.value for p in store.runs.metric_history(run.id, "loss")]
    assert math.isnan(values[4]) and values[6] == INF and values[7] == -INF
    assert values[:4] == [0.0, 1.0, 2.0, 3.0] and values[9] == 9.0
    latest = store.runs.get(run.id).metrics
    assert latest["loss"] == 9.0 and math.isnan(latest["last_nan"])
    assert math.isnan(store.runs.list()[0].metrics["last_nan"])
    assert store.runs.count_metric_points(run.id) == 12


def test_nan_never_wins_an_aggregate(store: Store) -> None:
    """PostgreSQL sorts NaN above every number: stored as such, it would be every MAX."""
    run = store.runs.create("m")
    store.runs.log_metric_points(
        run.id, [("acc", 0.5, 0, 0), ("acc", NAN, 1, 0), ("acc", 0.9, 2, 0)]
    )
    with store.engine.connect() as conn:
        best, worst = conn.execute(
            text("SELECT max(value), min(value) FROM metrics WHERE run_id = :r"), {"r": run.id}
        ).one()
    assert (best, worst) == (0.9, 0.5)


def test_a_refused_point_is_a_data_error_not_a_missing_run(store: Store) -> None:
    run = store.runs.create("m")
    with pytest.raises(TrackingError, match=f"refused metric points of run {run.id}") as caught:
        store.runs.log_metric_points(run.id, [("ok", 1.0, 0, 0), ("big", 1.0, 2**70, 0)])
    assert is_data_error(caught.value)
    assert store.runs.count_metric_points(run.id) == 0  # all or none
    with pytest.raises(NotFoundError, match="does not exist"):
        store.runs.log_metric_points("0" * 32, [("x", 1.0, 0, 0)], heartbeat=True)
    with pytest.raises(NotFoundError, match="does not exist"):
        store.runs.log_metric_points("0" * 32, [("x", 1.0, 0, 0)])


def test_upgrade_from_0002_keeps_runs_and_metrics(store_url: str) -> None:
    old = open_store(store_url, migrate=False)
    with old.engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.execute(
            text(
                'INSERT INTO runs (id, name, kind, status, started_at, "user", project) '
                "VALUES ('r1', 'old', 'run', 'running', '2026-01-01 00:00:00+00:00', 'u', 'p')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, key, value, step, timestamp) "
                "VALUES ('r1', 'loss', 0.5, 0, 0)"
            )
        )
        conn.commit()
    old.close()
    store = open_store(store_url)
    try:
        run = store.runs.get("r1")
        # Written before runs recorded their process: nothing tells it is dead, so it is not.
        assert run.status == "running" and run.host is None and run.heartbeat_at is None
        store.runs.log_metric_points("r1", [("loss", NAN, 1, 0)])
        values = [p.value for p in store.runs.metric_history("r1", "loss")]
        assert values[0] == 0.5 and math.isnan(values[1])
    finally:
        store.close()
