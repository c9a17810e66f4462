"""Service health read off the model servers themselves: up, error rate, batch sizes.

The prediction log records answered requests only, so what it cannot tell — whether a server
answers at all, how many requests failed, how large its micro-batches are — comes from each
replica's Prometheus ``/metrics`` endpoint, scraped once per monitoring pass.

Counters are cumulative, so each scrape stores their raw values as series (``server.*``,
labelled by deployment, replica, model and version) and derives the rates over the time since
the previous scrape of the same replica, as Prometheus' ``increase()`` does: a counter that went
down was reset by a restart and counts from zero. Written per replica and model version:

* ``service.up`` — 1 when the replica answered the scrape, else 0 (labels: deployment,
  replica);
* ``service.error_rate`` — failed requests over all requests since the previous scrape;
* ``service.server_error_rate`` — the same for 5xx answers only (the server's fault);
* ``service.batch_size`` — mean rows per predict call since the previous scrape.

A rate is written only when requests (or predict calls) arrived since the previous scrape.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from opsloop.errors import MonitorError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.store import Store

__all__ = [
    "RAW_SERIES",
    "ReplicaCounters",
    "ScrapeResult",
    "parse_server_metrics",
    "rates_since",
    "scrape_deployments",
]

Point = tuple[str, dict[str, str], datetime, float]

#: Raw cumulative counters stored per scrape, by series name.
RAW_SERIES = (
    "server.requests_total",
    "server.errors_total",
    "server.server_errors_total",
    "server.batch_rows_total",
    "server.batches_total",
)


@dataclass
class ReplicaCounters:
    """Cumulative counters of one model version on one replica."""

    requests: float = 0.0
    errors: float = 0.0
    server_errors: float = 0.0
    batch_rows: float = 0.0
    batches: float = 0.0

    def raw(self) -> dict[str, float]:
        """The counters by their series name."""
        return dict(
            zip(
                RAW_SERIES,
                (self.requests, self.errors, self.server_errors, self.batch_rows, self.batches),
                strict=True,
            )
        )


@dataclass
class ScrapeResult:
    """What one scrape of the deployments wrote.

    Attributes:
        points: Series points written.
        down: ``deployment@endpoint`` of every replica that did not answer, with the reason.
    """

    points: list[Point] = field(default_factory=list)
    down: dict[str, str] = field(default_factory=dict)


def parse_server_metrics(text: str) -> dict[tuple[str, str], ReplicaCounters]:
    """The counters of an opsloop model server's ``/metrics`` text, by (model, version).

    Raises:
        MonitorError: The text is not in the Prometheus exposition format.
    """
    # Lazy imports here and below (noqa: PLC0415) of prometheus_client, httpx: each loads only where
    # it is used, so importing this module stays light.
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    out: dict[tuple[str, str], ReplicaCounters] = defaultdict(ReplicaCounters)
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MonitorError(f"the /metrics answer is not in Prometheus' text format: {exc}") from exc
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("version", ""))
            if not key[0]:
                continue
            counters = out[key]
            if sample.name == "opsloop_requests_total":
                counters.requests += sample.value
            elif sample.name == "opsloop_request_errors_total":
                counters.errors += sample.value
                if labels.get("code", "").startswith("5"):
                    counters.server_errors += sample.value
            elif sample.name == "opsloop_batch_size_sum":
                counters.batch_rows += sample.value
            elif sample.name == "opsloop_batch_size_count":
                counters.batches += sample.value
    return dict(out)


def _increase(now: float, before: float | None) -> float:
    """A counter's increase since ``before``; a counter that went down was reset."""
    if before is None:
        return now
    return now - before if now >= before else now


def rates_since(current: ReplicaCounters, previous: ReplicaCounters | None) -> dict[str, float]:
    """``service.error_rate``, ``service.server_error_rate`` and ``service.batch_size`` over
    the increase of the counters since ``previous`` (None: since the server started)."""
    prev = previous.raw() if previous is not None else {}
    inc = {name: _increase(value, prev.get(name)) for name, value in current.raw().items()}
    out: dict[str, float] = {}
    answered = inc["server.requests_total"] + inc["server.errors_total"]
    if answered > 0:
        out["service.error_rate"] = inc["server.errors_total"] / answered
        out["service.server_error_rate"] = inc["server.server_errors_total"] / answered
    if inc["server.batches_total"] > 0:
        out["service.batch_size"] = inc["server.batch_rows_total"] / inc["server.batches_total"]
    return out


def _previous(store: Store, labels: dict[str, str], before: datetime) -> ReplicaCounters | None:
    """The raw counters of the last scrape of these labels before ``before``."""
    values = store.series.last_values_before(RAW_SERIES, labels, before)
    return None if values is None else ReplicaCounters(*(values[name] for name in RAW_SERIES))


def _replica(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].rstrip("/")


def scrape_deployments(
    store: Store,
    now: datetime,
    *,
    deployments: Sequence[str] | None = None,
    timeout: float = 2.0,
) -> ScrapeResult:
    """Scrape every running replica of the deployments the reconciler knows and write the
    service series (see the module docstring) at ``now``.

    Args:
        store: The metadata store (deployment records, series).
        now: The time of the points.
        deployments: Only these deployments (default: all with a live replica).
        timeout: Seconds to wait for one replica's answer.
    """
    import httpx  # noqa: PLC0415

    result = ScrapeResult()
    wanted = set(deployments) if deployments is not None else None
    with httpx.Client(timeout=timeout) as client:
        for record in store.deployments.list():
            if wanted is not None and record.name not in wanted:
                continue
            for endpoint in record.live.get("endpoints") or []:
                replica = _replica(str(endpoint))
                base = {"deployment": record.name, "replica": replica}
                try:
                    answer = client.get(f"{str(endpoint).rstrip('/')}/metrics")
                    answer.raise_for_status()
                    counters = parse_server_metrics(answer.text)
                except (httpx.HTTPError, MonitorError) as exc:
                    result.down[f"{record.name}@{replica}"] = str(exc) or type(exc).__name__
                    result.points.append(("service.up", base, now, 0.0))
                    continue
                result.points.append(("service.up", base, now, 1.0))
                for (model, version), current in sorted(counters.items()):
                    labels = {**base, "model": model, "version": version}
                    previous = _previous(store, labels, now)
                    for name, value in current.raw().items():
                        result.points.append((name, labels, now, value))
                    for name, value in rates_since(current, previous).items():
                        result.points.append((name, labels, now, value))
    store.series.append(result.points)
    return result
