"""The prediction/feedback log: sinks, batching, backpressure, retries, flush on close."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from opsloop.errors import ConfigError
from opsloop.serve import (
    FeedbackRecord,
    JsonlSink,
    ParquetSink,
    PredictionRecord,
    RecordLog,
    open_sink,
    read_jsonl,
)
from opsloop.serve.metrics import ServerMetrics

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def rec(i: int) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i}",
        model="m",
        version="1",
        inputs={"a": [float(i)], "city": ["paris"]},
        outputs=[[0.25, 0.75]],
        latency_ms=1.5,
        timestamp=NOW,
    )


def test_jsonl_sink_roundtrip(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "deep" / "log.jsonl")
    sink.write_batch([rec(1), rec(2)])
    sink.write_batch([FeedbackRecord("r1", 1, NOW, "m")])
    rows = read_jsonl(tmp_path / "deep" / "log.jsonl")
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r1"]
    assert rows[0]["inputs"] == {"a": [1.0], "city": ["paris"]}
    assert rows[0]["timestamp"] == "2026-01-02T03:04:05+00:00"
    assert rows[2]["label"] == 1


def test_parquet_sink_writes_one_part_per_batch(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "preds")
    sink.write_batch([rec(1), rec(2)])
    sink.write_batch([rec(3)])
    parts = sorted((tmp_path / "preds").glob("part-*.parquet"))
    assert len(parts) == 2
    table = pq.read_table(tmp_path / "preds").to_pandas()
    assert sorted(table["request_id"]) == ["r1", "r2", "r3"]
    assert table["inputs"].iloc[0].startswith("{")
    assert str(table["timestamp"].dtype).startswith("datetime64")


def test_open_sink(tmp_path: Path) -> None:
    assert isinstance(open_sink(str(tmp_path / "a.jsonl")), JsonlSink)
    assert isinstance(open_sink(f"jsonl://{tmp_path}/b.log"), JsonlSink)
    assert isinstance(open_sink(f"parquet://{tmp_path}/p"), ParquetSink)
    assert isinstance(open_sink(f"{tmp_path}/dir/"), ParquetSink)
    with pytest.raises(ConfigError, match=r"use a '\.jsonl' file"):
        open_sink(str(tmp_path / "x.csv"))


class SlowSink:
    """Takes a while per batch and remembers every batch."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches: list[list[PredictionRecord]] = []

    def write_batch(self, records: list[PredictionRecord]) -> None:
        time.sleep(self.delay)
        self.batches.append(list(records))


def test_full_queue_makes_producers_wait_and_nothing_is_dropped() -> None:
    sink = SlowSink(0.05)

    async def main() -> float:
        log = RecordLog(sink, name="predictions", max_queue=5, batch_size=5, flush_interval=0)
        log.start()
        start = time.perf_counter()
        for i in range(40):
            await log.put(rec(i))
            assert log.depth <= 5
        waited = time.perf_counter() - start
        await log.close()
        return waited

    waited = asyncio.run(main())
    assert waited > 0.15  # 40 records through a 5-deep queue at 50 ms per batch
    written = [r.request_id for batch in sink.batches for r in batch]
    assert written == [f"r{i}" for i in range(40)]
    assert max(len(b) for b in sink.batches) <= 5


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.records: list[PredictionRecord] = []
        self.lock = threading.Lock()

    def write_batch(self, records: list[PredictionRecord]) -> None:
        with self.lock:
            if self.failures:
                self.failures -= 1
                raise OSError("disk full")
            self.records.extend(records)


def test_failed_writes_are_retried_and_counted() -> None:
    sink = FlakySink(failures=2)
    metrics = ServerMetrics()

    async def main() -> RecordLog:
        log = RecordLog(sink, name="predictions", metrics=metrics, flush_interval=0)
        log.start()
        for i in range(10):
            await log.put(rec(i))
        await log.close()
        return log

    log = asyncio.run(main())
    assert [r.request_id for r in sink.records] == [f"r{i}" for i in range(10)]
    assert log.failed_batches == 2
    text = metrics.render().decode()
    assert 'opsloop_log_write_failures_total{log="predictions"} 2.0' in text
    assert 'opsloop_log_records_written_total{log="predictions"} 10.0' in text


def test_close_flushes_what_is_queued_and_refuses_more() -> None:
    sink = SlowSink(0.0)

    async def main() -> RecordLog:
        log = RecordLog(sink, name="predictions", flush_interval=5.0)
        log.start()
        for i in range(25):
            await log.put(rec(i))
        await log.close()
        with pytest.raises(RuntimeError, match="closed"):
            await log.put(rec(99))
        return log

    log = asyncio.run(main())
    assert log.written == 25
    assert sum(len(b) for b in sink.batches) == 25
