"""The metric buffer: refused points are set aside once, an outage costs nothing, and points
are written by time as well as by count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import opsloop
from opsloop.context import Project
from opsloop.errors import StoreError
from opsloop.store import Store, open_store
from opsloop.tracking.buffer import MetricBuffer
from tests.conftest import PG_URL


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def _refuse_step(store: Store, step: int) -> None:
    """Make the database itself refuse points at ``step``, as a constraint would."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON metrics WHEN NEW.step = {step} "
                    "BEGIN SELECT RAISE(ABORT, 'this step is refused'); END"
                )
            )
        else:
            conn.execute(text(f"ALTER TABLE metrics ADD CONSTRAINT refuse CHECK (step <> {step})"))


def test_refused_points_are_set_aside_once_and_the_rest_written(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run = store.runs.create("r")
    _refuse_step(store, 13)
    buf = MetricBuffer(store, run.id, capacity=100)
    with caplog.at_level(logging.WARNING, logger="opsloop.tracking"):
        for i in range(350):
            buf.add("loss", float(i), i, 0)
            if i == 150:
                buf.add("loss", 1.0, 2**70, 0)  # no backend holds it
        buf.close()
    history = store.runs.metric_history(run.id, "loss")
    assert [p.step for p in history] == [i for i in range(350) if i != 13]
    assert buf.rejected == 2 and buf.written == 349 and len(buf) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "opsloop.tracking"]
    assert len(warnings) == 2, warnings
    assert "refused 1 metric point(s)" in warnings[0]
    assert "key 'loss' step 13 value 13.0" in warnings[0]
    assert f"step {2**70} value 1.0" in warnings[1] and "not a 64-bit integer" in warnings[1]


def test_many_refused_points_cost_few_writes(store: Store) -> None:
    run = store.runs.create("r")
    buf = MetricBuffer(store, run.id, capacity=10_000)
    for i in range(5_000):
        buf.add("loss", float(i), i, 0)
        buf.add("bad", float(i), 2**64 + i, 0)
    started = time.perf_counter()
    buf.close()
    assert buf.rejected == 5_000 and store.runs.count_metric_points(run.id) == 5_000
    assert time.perf_counter() - started < 10


def test_points_are_written_by_time_and_the_heartbeat_refreshed(project: Project) -> None:
    project.settings.metric_flush_s = 0.2
    project.settings.heartbeat_s = 0.3
    store = project.store
    with opsloop.start_run() as run:
        for i in range(10):
            run.log_metric("loss", 1.0 / (i + 1))
        deadline = time.monotonic() + 5
        while store.runs.count_metric_points(run.id) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.runs.count_metric_points(run.id) == 10  # the run is still active
        first = store.runs.get(run.id).heartbeat_at
        time.sleep(1.0)
        later = store.runs.get(run.id).heartbeat_at
        assert first is not None and later is not None and later > first


def test_the_timer_and_the_logging_loop_lose_and_repeat_nothing(project: Project) -> None:
    project.settings.metric_flush_s = 0.01
    project.settings.metric_buffer_size = 997
    n = 100_000
    with opsloop.start_run() as run:
        for i in range(n):
            opsloop.log_metric("x", float(i))
            if i % 5_000 == 0:
                time.sleep(0.02)  # let the timer hand over partial batches
    steps = [p.step for p in project.store.runs.metric_history(run.id, "x")]
    assert steps == list(range(n))


def test_threads_logging_at_once_lose_nothing(project: Project) -> None:
    project.settings.metric_flush_s = 0.01
    project.settings.metric_buffer_size = 500
    with opsloop.start_run() as run:

        def work(key: str) -> None:
            for i in range(20_000):
                run.log_metric(key, float(i), step=i)

        threads = [threading.Thread(target=work, args=(f"k{t}",)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert project.store.runs.count_metric_points(run.id) == 80_000


@pytest.fixture
def pg_outage(pg_database_url: str) -> Iterator[tuple[str, threading.Event]]:
    """A PostgreSQL database, and a switch: set it to refuse every connection, clear it to
    accept them again."""
    name = make_url(pg_database_url).database
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    down = threading.Event()

    def apply() -> None:
        with admin.connect() as conn:
            allow = "false" if down.is_set() else "true"
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allow}'))
            if down.is_set():
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                    ),
                    {"n": name},
                )

    down.apply = apply  # type: ignore[attr-defined]
    try:
        yield pg_database_url, down
    finally:
        down.clear()
        apply()
        admin.dispose()


def test_an_outage_keeps_points_and_they_are_written_when_the_store_is_back(
    pg_outage: tuple[str, threading.Event], caplog: pytest.LogCaptureFixture
) -> None:
    url, down = pg_outage
    store = open_store(url)
    run = store.runs.create("r")
    buf = MetricBuffer(store, run.id, capacity=100, max_pending=300, outage_timeout_s=0.5)
    for i in range(100):
        buf.add("x", float(i), i, 0)
    buf.flush()
    with caplog.at_level(logging.WARNING, logger="opsloop.tracking"):
        down.set()
        down.apply()  # type: ignore[attr-defined]
        for i in range(100, 350):
            buf.add("x", float(i), i, 0)  # the writer thread fails: nothing is raised here
        with pytest.raises(StoreError):
            buf.flush()
        assert len(buf) == 250
        with pytest.raises(StoreError, match="points are held in memory"):
            for i in range(350, 10_000):
                buf.add("x", float(i), i, 0)
        kept = len(buf)
        down.clear()
        down.apply()  # type: ignore[attr-defined]
        buf.close()
    assert kept >= 300 and len(buf) == 0
    stored = [p.step for p in store.runs.metric_history(run.id, "x")]
    assert stored == list(range(100 + kept))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("the metadata store failed" in m for m in messages) == 1
    assert sum("answers again" in m for m in messages) == 1
    store.close()
