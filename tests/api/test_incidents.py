"""/api/v1/incidents and /alerts: list, show, approve or reject a waiting remediation."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from opsloop.aiops.executors import WebhookExecutor
from opsloop.aiops.remediation import RemediationEngine
from opsloop.spec.remediation import RemediationPolicy
from tests.aiops.conftest import Hook, hook  # noqa: F401 - the webhook fixture
from tests.aiops.test_remediation import RecordingExecutor, open_incident
from tests.api.conftest import Populated, is_problem


def _parked(populated: Populated, url: str, deployment: str) -> int:
    """An incident whose notify action awaits approval."""
    store = populated.project.store
    engine = RemediationEngine(
        store,
        WebhookExecutor(RecordingExecutor()),
        [
            RemediationPolicy.model_validate(
                {
                    "name": "ask-first",
                    "on": {"kinds": ["error_rate"]},
                    "require_approval": True,
                    "actions": ["notify"],
                    "notify": {"webhook": url},
                }
            )
        ],
    )
    inc_id = open_incident(store, "error_rate", deployment)
    engine.remediate(inc_id)
    return inc_id


def test_list_show_approve_reject(
    client_as: Callable[[str | None], httpx.Client],
    populated: Populated,
    hook: tuple[str, Hook],  # noqa: F811
) -> None:
    url, received = hook
    first = _parked(populated, url, "churn-prod")
    second = _parked(populated, url, "churn-eu")
    alice = client_as("admin-token")

    listed = alice.get("/api/v1/incidents").json()["items"]
    assert [i["id"] for i in listed] == [second, first]
    assert alice.get("/api/v1/incidents", params={"status": "resolved"}).json()["items"] == []
    shown = alice.get(f"/api/v1/incidents/{first}").json()
    assert shown["incident"]["kind"] == "error_rate"
    assert "awaiting_approval" in [a["status"] for a in shown["actions"]]
    assert shown["alerts"][0]["name"] == "error_rate_high"
    assert {e["type"] for e in shown["timeline"]} >= {"alert", "action"}
    alerts = alice.get("/api/v1/alerts").json()["items"]
    assert len(alerts) == 2
    assert alice.get(f"/api/v1/alerts/{alerts[0]['id']}").json() == alerts[0]

    approved = alice.post(f"/api/v1/incidents/{first}/approve")
    assert approved.status_code == 200, approved.text
    ran = [a for a in approved.json() if a["approved_by"] == "alice"]
    assert ran and all(a["status"] == "succeeded" for a in ran)
    assert received.bodies[-1]["event"] == "remediation"
    body = is_problem(alice.post(f"/api/v1/incidents/{first}/approve"), 409)
    assert "no action awaiting approval" in body["detail"]

    rejected = alice.post(f"/api/v1/incidents/{second}/reject", json={"reason": "noisy"})
    assert rejected.status_code == 200, rejected.text
    assert "rejected" in [a["status"] for a in rejected.json()]
    events = populated.project.store.events.list(kind="remediation.*")
    assert {
        e.actor for e in events if e.kind in ("remediation.approved", "remediation.rejected")
    } == {"alice"}

    is_problem(alice.get("/api/v1/incidents/999"), 404)
    is_problem(alice.post("/api/v1/incidents/999/reject"), 404)
    is_problem(alice.get("/api/v1/alerts/999"), 404)
