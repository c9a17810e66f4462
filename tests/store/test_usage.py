"""FinOps usage in the store: hourly rows that sum their records, on every backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pytest

from opsloop.errors import NotFoundError, StoreError
from opsloop.store import UsageRecord, open_store
from opsloop.store.repos.usage import hour_of

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)


def test_records_of_one_hour_and_dimensions_sum_into_one_row(store_url: str) -> None:
    store = open_store(store_url)
    dims = {"project": "demo", "run": "r1", "step": "train"}
    store.usage.add([UsageRecord(T0, "step", dims, {"cpu_s": 1.5, "wall_s": 2.0})])
    store.usage.add(
        [
            UsageRecord(T0 + timedelta(minutes=30), "step", dims, {"cpu_s": 0.5}),
            UsageRecord(T0 + timedelta(minutes=40), "step", dims, {"memory_gb_s": 3.0}),
            # Another hour, another step, another kind: other rows.
            UsageRecord(T0 + timedelta(hours=1), "step", dims, {"cpu_s": 7.0}),
            UsageRecord(T0, "step", {**dims, "step": "prepare"}, {"cpu_s": 1.0}),
            UsageRecord(T0, "trial", dims, {"cpu_s": 1.0}),
        ]
    )
    rows = store.usage.read()
    assert len(rows) == 4
    first = store.usage.read(kind="step", step="train", until=hour_of(T0) + timedelta(hours=1))
    assert len(first) == 1
    row = first[0]
    assert row.hour == hour_of(T0) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (row.cpu_s, row.wall_s, row.memory_gb_s, row.count) == (2.0, 2.0, 3.0, 3)
    assert row.dimensions == dims
    assert store.usage.read(since=T0 + timedelta(hours=1))[0].cpu_s == 7.0
    cols = store.usage.columns()
    assert sorted(cols["cpu_s"]) == [1.0, 1.0, 2.0, 7.0]
    assert store.usage.last_hour("step") == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert store.usage.last_hour("replica") is None
    store.close()


def test_bad_records_write_nothing(store_url: str) -> None:
    store = open_store(store_url)
    good = UsageRecord(T0, "step", {"run": "r"}, {"cpu_s": 1.0})
    with pytest.raises(StoreError, match=r"unknown usage dimension.*colour"):
        store.usage.add([good, UsageRecord(T0, "step", {"colour": "red"}, {})])
    with pytest.raises(StoreError, match=r"unknown usage quantity.*gpu_s"):
        store.usage.add([good, UsageRecord(T0, "step", {}, {"gpu_s": 1.0})])
    with pytest.raises(StoreError, match="cpu_s must be a finite number >= 0"):
        store.usage.add([good, UsageRecord(T0, "step", {}, {"cpu_s": -1.0})])
    with pytest.raises(StoreError, match="cpu_s must be a finite number >= 0"):
        store.usage.add([good, UsageRecord(T0, "step", {}, {"cpu_s": float("nan")})])
    with pytest.raises(StoreError, match="usage kind"):
        store.usage.add([good, UsageRecord(T0, "", {}, {})])
    assert store.usage.read() == []
    assert store.usage.add([]) == 0
    store.close()


def test_a_large_batch_is_written_in_parts(store_url: str) -> None:
    store = open_store(store_url)
    records = [
        UsageRecord(T0, "replica", {"deployment": f"d{i}"}, {"reserved_cpu_s": 1.0})
        for i in range(1200)
    ]
    assert store.usage.add(records) == 1200
    assert store.usage.add(records) == 1200
    rows = store.usage.read()
    assert len(rows) == 1200
    assert {r.reserved_cpu_s for r in rows} == {2.0}
    store.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from opsloop.store import UsageRecord, open_store
    url, who, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = open_store(url, actor=who)
    while time.time() < go:
        time.sleep(0.001)
    t = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    for i in range(40):
        # Both writers add to the same rows, in batches that overlap.
        store.usage.add([
            UsageRecord(t, "replica", {"deployment": f"d{j}"}, {"requests": 1.0, "cpu_s": 0.5})
            for j in range(5)
        ])
    store.close()
    """
)


@pytest.mark.slow
def test_concurrent_writers_lose_no_addition(store_url: str) -> None:
    open_store(store_url).close()  # the schema exists before the race
    go = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, f"w{i}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = open_store(store_url)
    rows = store.usage.read(kind="replica")
    assert len(rows) == 5
    assert {(r.requests, r.cpu_s, r.count) for r in rows} == {(80.0, 40.0, 80)}
    store.close()


def test_requests_and_storage_come_from_the_store(store_url: str) -> None:
    store = open_store(store_url)
    run = store.runs.create("train")
    store.runs.log_artifact(run.id, "model.skops", "sha256:" + "0" * 64, 1000)
    base = {"deployment": "churn", "model_name": "churn", "latency_ms": 1.0}
    store.predictions.log(
        [
            {**base, "request_id": "a", "model_version": "1", "time": T0, "inputs": {"x": [1]}},
            {**base, "request_id": "b", "model_version": "1", "time": T0, "inputs": {"x": [2]}},
            {**base, "request_id": "c", "model_version": "2", "time": T0 + timedelta(hours=2)},
        ]
    )
    assert store.usage.requests_after(None) == ([], 3)
    counts, newest = store.usage.requests_after(1)
    assert sorted(counts) == [("churn", "churn", "1", 1), ("churn", "churn", "2", 1)]
    assert newest == 3
    assert store.usage.requests_after(3) == ([], 3)
    assert store.usage.artifact_bytes() == {run.id: 1000}
    assert set(store.usage.prediction_log_bytes()) == {"churn"}
    assert store.usage.prediction_log_bytes()["churn"] > 0
    store.close()


def test_a_row_is_split_into_finer_rows_in_one_go(store_url: str) -> None:
    store = open_store(store_url)
    dims = {"project": "demo", "run": "r1", "step": "train"}
    store.usage.add([UsageRecord(T0, "step", dims, {"cpu_s": 10.0, "wall_s": 20.0})])
    (row,) = store.usage.read(kind="step")
    parts = [("trial", {"trial": "t1"}, 0.5), ("trial", {"trial": "t2"}, 0.25)]
    assert store.usage.split(row, parts) == 3
    (rest,) = store.usage.read(kind="step")
    assert (rest.cpu_s, rest.wall_s) == (2.5, 5.0)
    trials = {r.trial: r for r in store.usage.read(kind="trial")}
    assert (trials["t1"].cpu_s, trials["t1"].wall_s) == (5.0, 10.0)
    assert trials["t2"].cpu_s == 2.5 and trials["t2"].dimensions == {**dims, "trial": "t2"}
    assert trials["t1"].hour == row.hour
    with pytest.raises(StoreError, match="add up to at most 1"):
        store.usage.split(rest, [("trial", {"trial": "t3"}, 0.8), ("trial", {}, 0.3)])
    with pytest.raises(StoreError, match="unknown usage dimension"):
        store.usage.split(rest, [("trial", {"colour": "red"}, 0.1)])
    assert len(store.usage.read()) == 3  # nothing half-written
    gone = rest.model_copy(update={"run": "r2"})
    with pytest.raises(NotFoundError):
        store.usage.split(gone, [("trial", {"trial": "t9"}, 0.1)])
    store.close()
