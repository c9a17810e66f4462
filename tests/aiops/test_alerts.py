"""Alerts: fingerprints, deduplication in a real store, Alertmanager payloads, rules, detectors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from opsloop.aiops.alerts import (
    AlertIn,
    WebhookPayloadError,
    detect_anomalies,
    fingerprint,
    get_alert,
    list_alerts,
    normalize_severity,
    parse_alertmanager,
    record_alerts,
)
from opsloop.aiops.detectors import MADDetector
from opsloop.aiops.rules import (
    AlertsSection,
    ThresholdRule,
    evaluate_rule,
    evaluate_rules,
    load_alerts_section,
    run_alerting,
)
from opsloop.errors import AIOpsError, NotFoundError, SpecError
from opsloop.store import Store, open_store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'alerts.db'}", actor="tester")
    yield s
    s.close()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- the alert model ---------------------------------------------------------------------------


def test_fingerprint_is_stable_and_label_order_free() -> None:
    a = fingerprint("HighLatency", {"deployment": "churn-prod", "host": "n1"})
    b = fingerprint("HighLatency", {"host": "n1", "deployment": "churn-prod"})
    assert a == b and len(a) == 32
    assert a != fingerprint("HighLatency", {"deployment": "churn-prod", "host": "n2"})
    assert a != fingerprint("HighErrors", {"deployment": "churn-prod", "host": "n1"})
    assert (
        AlertIn(name="HighLatency", labels={"host": "n1", "deployment": "churn-prod"}).fingerprint
        == a
    )


def test_alert_in_normalises_severity_times_and_values() -> None:
    assert [normalize_severity(w) for w in ("page", "ERROR", "minor", "low", None, "??")] == [
        "critical",
        "critical",
        "warning",
        "info",
        "warning",
        "warning",
    ]
    naive = datetime(2025, 3, 1, 12, 0)
    alert = AlertIn(name="x", severity="high", starts_at=naive, labels={"port": 8080})  # type: ignore[dict-item]
    assert alert.severity == "critical"
    assert alert.starts_at.tzinfo is UTC and alert.last_seen_at == alert.starts_at
    assert alert.labels == {"port": "8080"}
    resolved = AlertIn(name="x", status="resolved", starts_at=at(0), last_seen_at=at(5))
    assert resolved.ends_at == at(5)


# -- deduplication in the store ----------------------------------------------------------------


def test_repeats_are_counted_not_duplicated(store: Store) -> None:
    labels = {"deployment": "churn-prod"}
    first = record_alerts(store, [AlertIn(name="HighLatency", labels=labels, starts_at=at(0))])
    assert first[0].count == 1 and first[0].status == "firing"
    rows = record_alerts(
        store,
        [
            AlertIn(name="HighLatency", labels=labels, starts_at=at(0), last_seen_at=at(1)),
            AlertIn(name="HighLatency", labels=labels, starts_at=at(0), last_seen_at=at(2)),
            # The same observation replayed is not a repeat.
            AlertIn(name="HighLatency", labels=labels, starts_at=at(0), last_seen_at=at(2)),
            AlertIn(name="HighLatency", labels={"deployment": "other"}, starts_at=at(1)),
        ],
    )
    assert rows[0].id == rows[1].id == rows[2].id == first[0].id
    assert rows[3].id != first[0].id
    stored = get_alert(store, first[0].id)
    assert stored.count == 3 and stored.last_seen_at == at(2) and stored.ends_at is None
    assert len(list_alerts(store)) == 2

    ended = record_alerts(
        store,
        [
            AlertIn(
                name="HighLatency",
                labels=labels,
                status="resolved",
                starts_at=at(0),
                last_seen_at=at(9),
            )
        ],
    )
    assert ended[0].id == first[0].id and ended[0].status == "resolved"
    assert ended[0].ends_at == at(9)
    # Firing again after the end is a new episode: a new row.
    again = record_alerts(store, [AlertIn(name="HighLatency", labels=labels, starts_at=at(30))])
    assert again[0].id != first[0].id and again[0].count == 1
    statuses = [a.status for a in list_alerts(store, name="HighLatency") if a.labels == labels]
    assert statuses == ["resolved", "firing"]

    kinds = [e.kind for e in store.events.list(object_type="alert")]
    assert kinds == ["alert.fired", "alert.fired", "alert.resolved", "alert.fired"]
    with pytest.raises(NotFoundError, match="alert 999 does not exist"):
        get_alert(store, 999)


def test_resolution_of_an_unseen_alert_is_kept(store: Store) -> None:
    rows = record_alerts(
        store, [AlertIn(name="DiskFull", status="resolved", starts_at=at(0), ends_at=at(4))]
    )
    assert rows[0].status == "resolved" and rows[0].ends_at == at(4)


def test_concurrent_writers_make_one_firing_row(store: Store) -> None:
    labels = {"deployment": "churn-prod"}
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def fire(k: int) -> None:
        try:
            barrier.wait()
            for j in range(5):
                record_alerts(
                    store,
                    [
                        AlertIn(
                            name="Burst",
                            labels=labels,
                            starts_at=at(0),
                            last_seen_at=at(k * 10 + j + 1),
                        )
                    ],
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = list_alerts(store, name="Burst")
    assert len(rows) == 1 and rows[0].status == "firing"
    assert 5 <= rows[0].count <= 20


# -- Alertmanager webhooks ---------------------------------------------------------------------

AM_PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "opsloop",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "severity": "page"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighLatency",
                "severity": "page",
                "deployment": "churn-prod",
                "instance": "node-1:8601",
            },
            "annotations": {"summary": "p99 over 250 ms"},
            "startsAt": "2025-03-01T12:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
            "fingerprint": "c4a7e0a1b2c3d4e5",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HighErrors", "deployment": "churn-prod"},
            "annotations": {},
            "startsAt": "2025-03-01T11:50:00Z",
            "endsAt": "2025-03-01T12:01:00+00:00",
            "generatorURL": "",
            "fingerprint": "0011223344556677",
        },
    ],
}


def test_alertmanager_payload_is_parsed() -> None:
    alerts = parse_alertmanager(json.dumps(AM_PAYLOAD), received_at=at(3))
    first, second = alerts
    assert first.name == "HighLatency" and first.severity == "critical"
    assert first.labels == {"deployment": "churn-prod", "instance": "node-1:8601"}
    assert first.source == "alertmanager" and first.status == "firing"
    assert first.starts_at == datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert first.last_seen_at == at(3) and first.ends_at is None
    assert first.details["fingerprint"] == "c4a7e0a1b2c3d4e5"
    assert first.details["severity_label"] == "page"
    assert first.details["alertmanager"]["receiver"] == "opsloop"
    assert first.annotations == {"summary": "p99 over 250 ms"}
    assert second.status == "resolved" and second.severity == "warning"
    assert second.ends_at == at(1) and "generatorURL" not in second.details


def test_alertmanager_fire_then_resolve_through_the_store(store: Store) -> None:
    fired = record_alerts(store, parse_alertmanager(AM_PAYLOAD, received_at=at(1)))
    repeat = record_alerts(store, parse_alertmanager(AM_PAYLOAD, received_at=at(2)))
    assert fired[0].id == repeat[0].id and repeat[0].count == 2
    resolved_payload = json.loads(json.dumps(AM_PAYLOAD))
    resolved_payload["alerts"][0]["status"] = "resolved"
    resolved_payload["alerts"][0]["endsAt"] = "2025-03-01T12:05:00Z"
    done = record_alerts(store, parse_alertmanager(resolved_payload, received_at=at(6)))
    assert done[0].id == fired[0].id and done[0].ends_at == at(5)


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda p: p.update(version="3"), "version", "not supported"),
        (lambda p: p.pop("alerts"), "alerts", "missing or not a list"),
        (
            lambda p: p["alerts"][1]["labels"].pop("alertname"),
            "alerts[1].labels.alertname",
            "required label",
        ),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts[0].status", "'pending'"),
        (
            lambda p: p["alerts"][0].update(startsAt="yesterday"),
            "alerts[0].startsAt",
            "not an RFC 3339",
        ),
        (
            lambda p: p["alerts"][0]["labels"].update(port=8601),
            "alerts[0].labels.port",
            "expected a string",
        ),
    ],
)
def test_alertmanager_errors_name_the_field(mutate, field: str, message: str) -> None:
    payload = json.loads(json.dumps(AM_PAYLOAD))
    mutate(payload)
    with pytest.raises(WebhookPayloadError, match=message) as info:
        parse_alertmanager(payload)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_alertmanager_body_must_be_json() -> None:
    with pytest.raises(WebhookPayloadError, match="not JSON"):
        parse_alertmanager(b"{nope")
    with pytest.raises(WebhookPayloadError, match="JSON object"):
        parse_alertmanager("[1, 2]")


# -- threshold rules ---------------------------------------------------------------------------


def test_rule_short_and_long_forms() -> None:
    section = AlertsSection.model_validate(
        {
            "rules": [
                {
                    "name": "feature-drift",
                    "series": "drift.psi",
                    "where": {"deployment": "churn-prod"},
                    "op": ">",
                    "threshold": 0.2,
                    "for": 2,
                    "severity": "warning",
                },
                "error_rate > 0.01",
                "latency_p99_ms{deployment=churn-prod, region='eu'} >= 2.5e2 for 3",
                {"expr": "accuracy < 0.8", "name": "quality", "severity": "page"},
            ]
        }
    )
    drift, errors, latency, quality = section.rules
    assert drift.for_points == 2 and drift.where == {"deployment": "churn-prod"}
    assert errors.name == "error_rate" and errors.op == ">" and errors.threshold == 0.01
    assert latency.where == {"deployment": "churn-prod", "region": "eu"}
    assert latency.threshold == 250 and latency.for_points == 3 and latency.op == ">="
    assert latency.describe() == "latency_p99_ms{deployment=churn-prod,region=eu} >= 250 for 3"
    assert quality.name == "quality" and quality.op == "<" and quality.severity == "critical"


def test_rules_load_from_opsloop_yaml_with_line_numbers(tmp_path: Path) -> None:
    spec = tmp_path / "opsloop.yaml"
    spec.write_text(
        "project: demo\n"
        "alerts:\n"
        "  rules:\n"
        "    - error_rate > 0.01\n"
        "    - {name: feature-drift, series: drift.psi, op: '>', threshold: 0.2, for: 2}\n"
        "  detector: {series: [latency], threshold: 0.8, for: 2}\n"
    )
    section = load_alerts_section(tmp_path)
    assert [r.name for r in section.rules] == ["error_rate", "feature-drift"]
    assert section.detector is not None and section.detector.for_points == 2

    spec.write_text(
        "project: demo\n"
        "alerts:\n"
        "  rules:\n"
        "    - error_rate > 0.01\n"
        "    - name: feature-drift\n"
        "      series: drift.psi\n"
        "      op: '=>'\n"
        "      threshold: 0.2\n"
    )
    with pytest.raises(SpecError) as info:
        load_alerts_section(spec)
    assert info.value.line == 7 and info.value.field == "alerts.rules.1.op"
    spec.write_text("project: demo\nalerts:\n  rules:\n    - error_rate >> 0.01\n")
    with pytest.raises(SpecError, match="not a rule expression") as info:
        load_alerts_section(spec)
    assert info.value.line == 4
    spec.write_text("project: demo\n")
    assert load_alerts_section(spec) == AlertsSection()


def test_rule_fires_after_for_points_and_resolves() -> None:
    rule = ThresholdRule.model_validate("drift.psi > 0.2 for 2")
    values = [0.1, 0.3, 0.1, 0.3, 0.4, 0.5, 0.1, 0.05]
    points = [(at(i), v) for i, v in enumerate(values)]
    alerts = evaluate_rule(rule, points, {"deployment": "churn-prod", "feature": "tenure"})
    assert [(a.status, a.starts_at, a.seen_at) for a in alerts] == [
        ("firing", at(3), at(4)),
        ("firing", at(3), at(5)),
        ("resolved", at(3), at(6)),
    ]
    assert alerts[0].labels == {"deployment": "churn-prod", "feature": "tenure"}
    assert alerts[0].details["value"] == 0.4 and alerts[0].source == "rule"
    assert alerts[-1].ends_at == at(6)


def test_rules_over_stored_series_respect_where(sqlite_store: Store) -> None:
    store = sqlite_store
    points = []
    for i in range(6):
        bad = 0.05 if i in (2, 3) else 0.001
        points.append(("error_rate", {"deployment": "a"}, at(i), bad))
        points.append(("error_rate", {"deployment": "b"}, at(i), 0.05))
    store.series.append(points)
    rule = ThresholdRule.model_validate(
        {
            "name": "errors",
            "series": "error_rate",
            "where": {"deployment": "a"},
            "threshold": 0.01,
            "category": "error_rate",
            "labels": {"team": "growth"},
        }
    )
    alerts = evaluate_rules(store, [rule])
    assert {a.labels["deployment"] for a in alerts} == {"a"}
    assert [a.status for a in alerts] == ["firing", "firing", "resolved"]
    assert alerts[0].labels == {"deployment": "a", "team": "growth", "category": "error_rate"}
    stored = record_alerts(store, alerts)
    assert len({s.id for s in stored}) == 1 and stored[-1].status == "resolved"
    assert stored[-1].count == 2
    # Points before `since` are not evaluated.
    assert evaluate_rules(store, [rule], since=at(4)) == []


def test_detector_alerts_on_an_anomalous_series(sqlite_store: Store) -> None:
    store = sqlite_store
    rng = np.random.default_rng(7)
    values = rng.normal(100, 2, 300)
    values[250:253] = 400
    store.series.append(
        [
            ("latency_p99_ms", {"deployment": "churn-prod"}, at(i), float(v))
            for i, v in enumerate(values)
        ]
        + [
            ("latency_p99_ms", {"deployment": "calm"}, at(i), float(v))
            for i, v in enumerate(rng.normal(100, 2, 300))
        ]
    )
    alerts = detect_anomalies(store, series_prefix="latency", threshold=0.7)
    assert alerts, "the spike was not detected"
    assert {a.labels["deployment"] for a in alerts} == {"churn-prod"}
    firing = [a for a in alerts if a.status == "firing"]
    assert all(at(249) <= a.starts_at <= at(253) for a in firing)
    assert firing[0].name == "latency_p99_ms anomaly" and firing[0].source == "detector"
    assert firing[0].labels["series"] == "latency_p99_ms"
    assert firing[0].details["score"] >= 0.7 and firing[0].details["value"] == 400
    # Learning from every point but alerting only after the spike: nothing to say.
    assert detect_anomalies(store, series_prefix="latency", threshold=0.7, since=at(260)) == []
    section = AlertsSection.model_validate(
        {"rules": ["latency_p99_ms > 300"], "detector": {"series": ["latency"], "threshold": 0.7}}
    )
    both = run_alerting(store, section)
    assert {a.source for a in both} == {"rule", "detector"}


def test_detector_scope_exclusions_and_bounded_replay(sqlite_store: Store) -> None:
    store = sqlite_store
    rng = np.random.default_rng(11)
    values = rng.normal(100, 2, 600)
    values[590:592] = 400
    points = []
    for name, labels in [
        ("service.latency_p95", {"deployment": "churn-prod"}),
        ("service.latency_p95", {"deployment": "churn-eu"}),
        ("monitor.window", {"deployment": "churn-prod"}),
        ("server.requests_total", {"deployment": "churn-prod"}),
    ]:
        points += [(name, labels, at(i), float(v)) for i, v in enumerate(values)]
    store.series.append(points)
    # Every series but the bookkeeping and the raw counters, by default.
    alerts = detect_anomalies(store, threshold=0.7)
    assert {a.labels["series"] for a in alerts} == {"service.latency_p95"}
    assert {a.labels["deployment"] for a in alerts} == {"churn-prod", "churn-eu"}
    # Only the deployments asked for.
    only = detect_anomalies(
        store, threshold=0.7, where=lambda labels: labels.get("deployment") == "churn-eu"
    )
    assert {a.labels["deployment"] for a in only} == {"churn-eu"}
    # A replay of the latest 200 points still finds the spike, and only looks at them.
    recent = detect_anomalies(store, series_prefix="service.", threshold=0.7, last=200)
    firing = [a for a in recent if a.status == "firing"]
    assert firing and all(at(589) <= a.starts_at <= at(592) for a in firing)
    with pytest.raises(AIOpsError, match="last must be at least 1"):
        detect_anomalies(store, last=0)


class _Halves(MADDetector):
    """Scores every point 0.5: only its threshold decides whether that is anomalous."""

    alert_threshold = 0.4

    def score_one(self, x: float, t: datetime | None = None) -> float:
        return 0.5


def test_a_detector_alerts_at_its_own_threshold_unless_told_otherwise(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    store.series.append([("latency_p99_ms", {"deployment": "a"}, at(i), 1.0) for i in range(5)])
    assert detect_anomalies(store, detector=_Halves, checkpoint=False)
    assert detect_anomalies(store, detector=_Halves, threshold=0.6, checkpoint=False) == []
    section = AlertsSection.model_validate({"detector": {"series": ["latency"]}})
    assert section.detector is not None and section.detector.threshold is None
