"""POST /api/v1/alerts/alertmanager: Alertmanager's webhook, on a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.conftest import Populated, is_problem


def payload(*alerts: dict[str, Any], group: str = "{}:{}") -> dict[str, Any]:
    """A version 4 webhook body, as Alertmanager sends it."""
    return {
        "version": "4",
        "groupKey": group,
        "status": "firing",
        "receiver": "opsloop",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def am_alert(
    name: str,
    starts: str,
    status: str = "firing",
    ends: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": {"summary": f"{name} on {labels.get('deployment', '?')}"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": name[:8],
    }


def test_a_webhook_delivery_is_stored_correlated_and_answered(
    client_as: Callable[[str | None], httpx.Client], populated: Populated
) -> None:
    dora = client_as("dev-token")
    body = payload(
        am_alert("HighErrorRate", "2026-03-01T10:00:00Z", deployment="churn-prod"),
        am_alert("HighLatency", "2026-03-01T10:01:00Z", deployment="churn-prod"),
    )
    answer = dora.post("/api/v1/alerts/alertmanager", json=body)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert len(got["alerts"]) == 2 and len(got["opened"]) == 1
    assert got["updated"] == [] and got["resolved"] == []
    stored = dora.get("/api/v1/alerts").json()["items"]
    assert sorted(a["id"] for a in stored) == sorted(got["alerts"])
    assert {a["source"] for a in stored} == {"alertmanager"}
    assert {a["incident_id"] for a in stored} == set(got["opened"])
    incident = dora.get(f"/api/v1/incidents/{got['opened'][0]}").json()["incident"]
    assert incident["details"]["alert_count"] == 2
    events = populated.project.store.events.list(kind="alert.*")
    assert events and {e.actor for e in events} == {"dora"}

    # Alertmanager sends the group again, then its end: the same rows, then resolved.
    again = dora.post("/api/v1/alerts/alertmanager", json=body).json()
    assert again["alerts"] == got["alerts"] and again["opened"] == []
    ended = payload(
        am_alert(
            "HighErrorRate",
            "2026-03-01T10:00:00Z",
            status="resolved",
            ends="2026-03-01T10:20:00Z",
            deployment="churn-prod",
        )
    )
    resolved = dora.post("/api/v1/alerts/alertmanager", json=ended)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["alerts"] == got["alerts"][:1]
    first = dora.get(f"/api/v1/alerts/{got['alerts'][0]}").json()
    assert first["status"] == "resolved"


def test_the_webhook_needs_a_token_and_the_developer_role(
    client_as: Callable[[str | None], httpx.Client], populated: Populated
) -> None:
    body = payload(am_alert("HighErrorRate", "2026-03-01T10:00:00Z", deployment="churn-prod"))
    is_problem(client_as(None).post("/api/v1/alerts/alertmanager", json=body), 401)
    refused = is_problem(
        client_as("viewer-token").post("/api/v1/alerts/alertmanager", json=body), 403
    )
    assert "needs the developer role" in refused["detail"]
    assert populated.project.store.incidents.list_alerts() == []


def test_a_payload_that_is_not_alertmanagers_is_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.Client, populated: Populated
) -> None:
    good = am_alert("HighErrorRate", "2026-03-01T10:00:00Z", deployment="churn-prod")
    cases = [
        (b"{not json", "body is not JSON"),
        (payload(good) | {"version": "3"}, "version"),
        (payload(good, {**good, "status": "pending"}), "alerts[1].status"),
        (payload(good, {**good, "labels": {"severity": "x"}}), "alerts[1].labels.alertname"),
        (payload(good, {**good, "startsAt": "yesterday"}), "alerts[1].startsAt"),
        (payload(good, {**good, "labels": {"alertname": "A", "n": 1}}), "alerts[1].labels.n"),
    ]
    for body, field in cases:
        if isinstance(body, bytes):
            sent = client.post(
                "/api/v1/alerts/alertmanager",
                content=body,
                headers={"content-type": "application/json"},
            )
        else:
            sent = client.post("/api/v1/alerts/alertmanager", json=body)
        problem = is_problem(sent, 400)
        assert field in problem["detail"], (field, problem)
    assert populated.project.store.incidents.list_alerts() == []
