"""Scraping the model servers' /metrics: up, error rate, batch size, counter resets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsloop.aiops.rules import AlertsSection, evaluate_rules
from opsloop.errors import MonitorError
from opsloop.monitor.scrape import (
    ReplicaCounters,
    parse_server_metrics,
    rates_since,
    scrape_deployments,
)
from opsloop.serve.metrics import ServerMetrics
from opsloop.store import Store, open_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MetricsServer:
    """A real HTTP server on 127.0.0.1 answering /metrics with a server's ServerMetrics."""

    def __init__(self) -> None:
        self.metrics = ServerMetrics()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.metrics.render()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, version: str, ok: int, errors: dict[str, int], batches: list[int]) -> None:
        m = self.metrics
        m.requests.labels("churn", version, "v2").inc(ok)
        for code, n in errors.items():
            m.errors.labels("churn", version, code).inc(n)
        for rows in batches:
            m.batch_size.labels("churn", version).observe(rows)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    s = MetricsServer()
    yield s
    s.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def _live(store: Store, name: str, endpoints: list[str]) -> None:
    store.deployments.save_status(
        name,
        revision=None,
        desired={"spec": {"model": "churn", "traffic": {"1": 100.0}}},
        live={"endpoints": endpoints},
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )


def test_parse_reads_the_counters_of_each_version() -> None:
    m = ServerMetrics()
    m.requests.labels("churn", "1", "v2").inc(90)
    m.requests.labels("churn", "1", "mlflow").inc(5)
    m.errors.labels("churn", "1", "422").inc(3)
    m.errors.labels("churn", "1", "500").inc(2)
    m.batch_size.labels("churn", "1").observe(4)
    m.batch_size.labels("churn", "1").observe(12)
    m.requests.labels("churn", "2", "v2").inc(7)
    parsed = parse_server_metrics(m.render().decode())
    assert parsed[("churn", "1")] == ReplicaCounters(95.0, 5.0, 2.0, 16.0, 2.0)
    assert parsed[("churn", "2")] == ReplicaCounters(7.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(MonitorError, match="Prometheus"):
        parse_server_metrics("opsloop_requests_total{model=churn} not-a-number\n")


def test_rates_use_the_increase_and_survive_a_restart() -> None:
    before = ReplicaCounters(100, 10, 4, 300, 30)
    now = ReplicaCounters(190, 20, 4, 500, 40)
    assert rates_since(now, before) == {
        "service.error_rate": 10 / 100,
        "service.server_error_rate": 0.0,
        "service.batch_size": 20.0,
    }
    # The counters went down: the server restarted and counts from zero.
    restarted = ReplicaCounters(8, 2, 2, 10, 5)
    assert rates_since(restarted, now) == {
        "service.error_rate": 0.2,
        "service.server_error_rate": 0.2,
        "service.batch_size": 2.0,
    }
    # Nothing arrived: no rate rather than a made-up zero.
    assert rates_since(now, now) == {}


def test_scrape_writes_up_error_rate_and_batch_size(store: Store, server: MetricsServer) -> None:
    _live(store, "churn-prod", [server.url])
    server.answer("1", ok=95, errors={"422": 5}, batches=[1, 3])
    first = scrape_deployments(store, T0)
    assert first.down == {}
    replica = server.url.removeprefix("http://")
    labels = {"deployment": "churn-prod", "replica": replica, "model": "churn", "version": "1"}
    assert [p.value for p in store.series.read("service.error_rate", labels)] == [0.05]
    assert [p.value for p in store.series.read("service.server_error_rate", labels)] == [0.0]
    assert [p.value for p in store.series.read("service.batch_size", labels)] == [2.0]

    # A minute later half the new requests failed with 500s, in batches of 8.
    server.answer("1", ok=50, errors={"500": 50}, batches=[8] * 5)
    scrape_deployments(store, T0 + timedelta(minutes=1))
    rates = [p.value for p in store.series.read("service.server_error_rate", labels)]
    assert rates == [0.0, 0.5]
    assert [p.value for p in store.series.read("service.batch_size", labels)] == [2.0, 8.0]
    up = {"deployment": "churn-prod", "replica": replica}
    assert [p.value for p in store.series.read("service.up", up)] == [1.0, 1.0]

    # A rule on the scraped series fires like any other.
    section = AlertsSection.model_validate({"rules": ["service.error_rate > 0.1"]})
    (alert,) = evaluate_rules(store, section)
    assert alert.labels["deployment"] == "churn-prod" and alert.details["value"] == 0.5


def test_a_replica_that_does_not_answer_is_down(store: Store, server: MetricsServer) -> None:
    url = server.url
    server.close()
    _live(store, "churn-prod", [url])
    _live(store, "other", ["http://127.0.0.1:9/"])
    result = scrape_deployments(store, T0, deployments=["churn-prod"], timeout=0.5)
    assert list(result.down) == [f"churn-prod@{url.removeprefix('http://')}"]
    (point,) = store.series.read("service.up")
    assert point.value == 0.0 and point.labels["deployment"] == "churn-prod"
