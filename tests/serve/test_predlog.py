"""The prediction/feedback log: sinks, batching, backpressure, retries, flush on close."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from opsloop.serve.app import ServerState
from opsloop.serve.config import ServerConfig
from opsloop.serve.metrics import ServerMetrics
from opsloop.serve.store_sink import StorePredictionSink
from opsloop.store import open_store

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


# -- records that cannot be written: isolated, set aside, never blocking the rest -------------

FAST = {"retry_delay": 0.001, "max_retry_delay": 0.01}


def bad(i: int) -> PredictionRecord:
    """A record JSON Lines cannot hold: a lone surrogate, as a JSON body's ``"\\ud800"``
    decodes to."""
    record = rec(i)
    record.inputs = {"a": [float(i)], "city": ["\ud800"]}
    return record


def opaque(i: int) -> PredictionRecord:
    """A record with an input no JSON encoder without a fallback can hold."""
    record = rec(i)
    record.inputs = {"a": [object()], "city": ["paris"]}
    return record


def ids_in(path: Path) -> list[str]:
    return [row["request_id"] for row in read_jsonl(path)] if path.exists() else []


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def drain(sink: JsonlSink, records: list[Any], **options: Any) -> RecordLog[Any]:
    """Queue every record on a new log over ``sink``, then close it (which drains it)."""

    async def main() -> RecordLog[Any]:
        log: RecordLog[Any] = RecordLog(sink, name="predictions", flush_interval=5.0, **options)
        log.start()
        await log.put_many(records)
        await log.close()
        return log

    return asyncio.run(main())


def test_a_record_that_cannot_be_encoded_is_set_aside_and_the_rest_written(
    tmp_path: Path,
) -> None:
    sink = JsonlSink(tmp_path / "preds.jsonl")
    dead = RecordLog.dead_letter_for(sink)
    assert dead == tmp_path / "preds.dead-letter.jsonl"
    records = [bad(i) if i == 137 else rec(i) for i in range(200)]

    log = drain(sink, records, dead_letter=dead)
    written = ids_in(sink.path)
    assert len(written) == 199
    assert set(written) == {f"r{i}" for i in range(200)} - {"r137"}
    assert (log.written, log.dead_lettered) == (199, 1)
    assert dead is not None
    [row] = read_jsonl(dead)
    assert row["log"] == "predictions"
    assert row["error"] == {
        "type": "TypeError",
        "message": "str is not valid UTF-8: surrogates not allowed",
    }
    assert dt.datetime.fromisoformat(row["time"]).tzinfo is not None
    assert row["record"]["request_id"] == "r137"
    assert row["record"]["inputs"] == {"a": [137.0], "city": [repr("\ud800")]}
    assert row["record"]["outputs"] == [[0.25, 0.75]]


def test_close_drains_batches_with_several_bad_records(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "preds.jsonl")
    dead = tmp_path / "dead" / "preds.jsonl"
    poisoned = {3, 17, 18, 40, 99}
    records = [bad(i) if i in poisoned else rec(i) for i in range(100)]

    log = drain(sink, records, batch_size=16, dead_letter=dead)
    written = ids_in(sink.path)
    assert len(written) == 95
    assert set(written) == {f"r{i}" for i in range(100) if i not in poisoned}
    assert sorted(row["record"]["request_id"] for row in read_jsonl(dead)) == sorted(
        f"r{i}" for i in poisoned
    )
    assert log.dead_lettered == 5


def test_the_writer_keeps_working_after_a_poison_batch(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "preds.jsonl")
    dead = tmp_path / "dead.jsonl"

    async def main() -> RecordLog:
        log = RecordLog(sink, name="predictions", flush_interval=0, dead_letter=dead)
        log.start()
        await log.put_many([bad(0), *(rec(i) for i in range(1, 10))])
        await until(lambda: log.dead_lettered == 1 and log.written == 9)
        await log.put_many([rec(i) for i in range(10, 20)])
        await until(lambda: log.written == 19)  # written while running, not by close()
        await log.close()
        return log

    asyncio.run(main())
    assert sorted(ids_in(sink.path)) == sorted(f"r{i}" for i in range(1, 20))
    assert [row["record"]["request_id"] for row in read_jsonl(dead)] == ["r0"]


@pytest.mark.parametrize(("count", "batch_size", "failures"), [(30, 10, 12), (1, 10, 9)])
def test_a_sink_that_is_down_for_a_while_loses_nothing(
    tmp_path: Path, count: int, batch_size: int, failures: int
) -> None:
    # More failures in a row than max_attempts: the batch is split while looking for a bad
    # record, finds none that fails alone while others get through, and writes all later.
    sink = FlakySink(failures=failures)
    dead = tmp_path / "dead.jsonl"

    async def main() -> RecordLog:
        log = RecordLog(
            sink,
            name="predictions",
            batch_size=batch_size,
            flush_interval=5.0,
            dead_letter=dead,
            max_attempts=3,
            **FAST,
        )
        log.start()
        await log.put_many([rec(i) for i in range(count)])
        await log.close()
        return log

    log = asyncio.run(main())
    written = [r.request_id for r in sink.records]
    assert sorted(written) == sorted(f"r{i}" for i in range(count))
    assert (log.written, log.dead_lettered, log.failed_batches) == (count, 0, failures)
    assert not dead.exists()


class RejectingSink:
    """Refuses, as one transaction, every batch holding a rejected request id."""

    def __init__(self, rejected: set[str]) -> None:
        self.rejected = rejected
        self.records: list[PredictionRecord] = []

    def write_batch(self, records: list[PredictionRecord]) -> None:
        for r in records:
            if r.request_id in self.rejected:
                raise RuntimeError(f"row {r.request_id} violates a constraint")
        self.records.extend(records)


def test_a_record_refused_for_another_reason_is_isolated_after_retries(tmp_path: Path) -> None:
    # The bad record arrives alone, so at first nothing tells it from a sink that is down; the
    # records queued behind it give that evidence.
    sink = RejectingSink({"r0"})
    dead = tmp_path / "dead.jsonl"

    async def main() -> RecordLog:
        log = RecordLog(
            sink, name="predictions", flush_interval=0, dead_letter=dead, max_attempts=2, **FAST
        )
        log.start()
        await log.put(rec(0))
        await until(lambda: log.failed_batches >= 4)
        await log.put_many([rec(i) for i in range(1, 21)])
        await until(lambda: log.dead_lettered == 1 and log.written == 20)
        await log.close()
        return log

    asyncio.run(main())
    assert sorted(r.request_id for r in sink.records) == sorted(f"r{i}" for i in range(1, 21))
    [row] = read_jsonl(dead)
    assert row["error"] == {"type": "RuntimeError", "message": "row r0 violates a constraint"}
    assert row["record"]["request_id"] == "r0"


class RecordingSink:
    """Passes batches on to a real sink, remembering the request ids of every call."""

    def __init__(self, inner: StorePredictionSink) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []

    def write_batch(self, records: list[PredictionRecord]) -> None:
        self.calls.append(tuple(r.request_id for r in records))
        self.inner.write_batch(records)


def test_a_data_error_wrapped_by_the_database_driver_is_not_retried(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    sink = RecordingSink(StorePredictionSink(store, "prod"))
    dead = tmp_path / "dead.jsonl"

    async def main() -> RecordLog:
        # Were the error retried, each retry would wait a second and repeat a call.
        log = RecordLog(
            sink,
            name="predictions",
            flush_interval=5.0,
            dead_letter=dead,
            max_attempts=50,
            retry_delay=1.0,
        )
        log.start()
        await log.put_many([opaque(i) if i == 5 else rec(i) for i in range(12)])
        await log.close()
        return log

    log = asyncio.run(main())
    assert len(sink.calls) == len(set(sink.calls))
    assert sorted(p.request_id for p in store.predictions.read()) == sorted(
        f"r{i}" for i in range(12) if i != 5
    )
    store.close()
    [row] = read_jsonl(dead)
    assert row["error"]["type"] == "sqlalchemy.exc.StatementError"
    assert "Object of type object is not JSON serializable" in row["error"]["message"]
    assert row["record"]["inputs"]["a"][0].startswith("<object object at ")
    assert log.dead_lettered == 1


class DownSink:
    def write_batch(self, records: list[PredictionRecord]) -> None:
        raise OSError("connection refused")


def test_records_the_sink_refuses_until_shutdown_are_set_aside_not_lost(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"

    async def main() -> RecordLog:
        log = RecordLog(
            DownSink(),
            name="feedback",
            batch_size=4,
            flush_interval=0,
            dead_letter=dead,
            retry_delay=0.01,
            max_retry_delay=0.05,
        )
        log.start()
        await log.put_many([rec(i) for i in range(10)])
        await log.close(timeout=0.3)
        return log

    log = asyncio.run(main())
    rows = read_jsonl(dead)
    assert sorted(row["record"]["request_id"] for row in rows) == sorted(f"r{i}" for i in range(10))
    assert {row["log"] for row in rows} == {"feedback"}
    assert rows[0]["error"] == {"type": "OSError", "message": "connection refused"}
    assert (log.written, log.dead_lettered) == (0, 10)


def test_without_a_dead_letter_file_refused_records_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = JsonlSink(tmp_path / "preds.jsonl")

    async def main() -> RecordLog:
        log = RecordLog(sink, name="predictions", flush_interval=5.0)
        log.start()
        await log.put_many([rec(0), bad(1), bad(2), rec(3)])
        await log.close()
        return log

    with caplog.at_level(logging.ERROR, logger="opsloop.serve"):
        log = asyncio.run(main())
    assert sorted(ids_in(sink.path)) == ["r0", "r3"]
    assert log.dead_lettered == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "predictions log: 2 records could not be written and are dropped" in errors[0]


def test_dead_letters_of_a_parquet_sink_stay_out_of_its_dataset(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "preds")
    dead = RecordLog.dead_letter_for(sink)
    assert dead == tmp_path / "preds" / "_dead-letter.jsonl"
    huge = rec(2)
    huge.latency_ms = 2**70  # no Parquet integer holds it

    async def main() -> RecordLog:
        log = RecordLog(sink, name="predictions", flush_interval=5.0, dead_letter=dead)
        log.start()
        await log.put_many([rec(0), rec(1), huge, rec(3)])
        await log.close()
        return log

    asyncio.run(main())
    table = pq.read_table(tmp_path / "preds").to_pandas()
    assert sorted(table["request_id"]) == ["r0", "r1", "r3"]
    assert dead is not None
    [row] = read_jsonl(dead)
    assert row["error"]["type"] == "OverflowError"
    assert row["record"]["latency_ms"] == 2**70 or row["record"]["latency_ms"] == str(2**70)


def test_the_server_logs_get_a_dead_letter_file_beside_file_sinks(tmp_path: Path) -> None:
    config = ServerConfig(
        prediction_sink=JsonlSink(tmp_path / "logs" / "predictions.jsonl"),
        feedback_sink=ParquetSink(tmp_path / "feedback"),
    )
    state = ServerState(config)
    try:
        assert state.predictions is not None and state.feedback is not None
        assert state.predictions.dead_letter == tmp_path / "logs" / "predictions.dead-letter.jsonl"
        assert state.feedback.dead_letter == tmp_path / "feedback" / "_dead-letter.jsonl"
    finally:
        state.executor.shutdown()
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    assert RecordLog.dead_letter_for(StorePredictionSink(store)) is None
    store.close()
