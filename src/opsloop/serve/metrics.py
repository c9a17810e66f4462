"""Prometheus metrics of one server, in a registry of its own (so apps never share counters)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    """Request, error, latency, batch, shadow and prediction-log metrics of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "opsloop_requests",
            "Prediction requests answered, by model, version and protocol.",
            ["model", "version", "protocol"],
            registry=r,
        )
        self.rows = Counter(
            "opsloop_predicted_rows",
            "Rows predicted, by model and version.",
            ["model", "version"],
            registry=r,
        )
        self.errors = Counter(
            "opsloop_request_errors",
            "Requests answered with an error, by model, version and HTTP status code.",
            ["model", "version", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "opsloop_request_latency_seconds",
            "Time from a request's arrival to its answer.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "opsloop_batch_size",
            "Rows per predict call (micro-batch size).",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.predict_latency = Histogram(
            "opsloop_predict_latency_seconds",
            "Time of one predict call, frame building included.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow = Counter(
            "opsloop_shadow_predictions",
            "Shadow predictions, by whether they agreed with the answer returned.",
            ["model", "version", "shadow_version", "agreed"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "opsloop_shadow_skipped",
            "Shadow copies not made because too many were already running.",
            ["model", "shadow_version"],
            registry=r,
        )
        self.model_ready = Gauge(
            "opsloop_model_ready",
            "1 while a model version is loaded and serving.",
            ["model", "version"],
            registry=r,
        )
        self.traffic_weight = Gauge(
            "opsloop_traffic_weight",
            "Share of a model's routed traffic a version receives (0..1).",
            ["model", "version"],
            registry=r,
        )
        self.log_queue = Gauge(
            "opsloop_log_queue_depth",
            "Records waiting to be written, by log.",
            ["log"],
            registry=r,
        )
        self.log_written = Counter(
            "opsloop_log_records_written",
            "Records written to a sink, by log.",
            ["log"],
            registry=r,
        )
        self.log_failures = Counter(
            "opsloop_log_write_failures",
            "Failed batch writes (retried), by log.",
            ["log"],
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """The labelled child of ``metric``, cached (``labels()`` is slow on the hot path)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
