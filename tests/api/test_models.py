"""/api/v1/models: models, versions, security status, alias moves made for the caller."""

from __future__ import annotations

import httpx

from tests.api.conftest import DIGEST, Populated, is_problem


def test_models_and_versions(client: httpx.Client, populated: Populated) -> None:
    [churn] = client.get("/api/v1/models").json()["items"]
    assert churn["name"] == "churn" and churn["latest_version"] == 2
    assert churn["aliases"] == {"champion": 1}
    assert client.get("/api/v1/models/churn").json() == churn
    v1 = client.get("/api/v1/models/churn/versions/1").json()
    assert v1["aliases"] == ["champion"] and v1["dataset_digest"] == DIGEST
    assert v1["run_id"] == populated.model_run
    is_problem(client.get("/api/v1/models/nope"), 404)
    is_problem(client.get("/api/v1/models/nope/versions"), 404)
    is_problem(client.get("/api/v1/models/churn/versions/9"), 404)
    is_problem(client.get("/api/v1/models/churn/versions/0"), 422)


def test_security_status(client: httpx.Client) -> None:
    status = client.get("/api/v1/models/churn/versions/2/security").json()
    assert status["scan"] == "passed" and status["signed"] is True
    assert status["signature"]["key_id"] and status["bom"] == "opsloop bom models:/churn/2"


def test_alias_moves_as_the_caller(client: httpx.Client, populated: Populated) -> None:
    moved = client.put("/api/v1/models/churn/aliases/champion", json={"version": 2})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "model": "churn",
        "alias": "champion",
        "version": 2,
        "previous": 1,
        "moved": True,
        "rollback": False,
    }
    store = populated.project.store
    assert store.models.get("churn").aliases == {"champion": 2}
    [event] = store.events.list(kind="alias.set", object_id="churn")[-1:]
    assert event.actor == populated.project.settings.resolved_actor()

    # Back to v1 is a rollback: refused unless asked for.
    body = is_problem(client.put("/api/v1/models/churn/aliases/champion", json={"version": 1}), 409)
    assert "rollback" in body["detail"] and body["type"].endswith("/rollback")
    back = client.put(
        "/api/v1/models/churn/aliases/champion", json={"version": 1, "allow_rollback": True}
    )
    assert back.json()["rollback"] is True

    assert client.delete("/api/v1/models/churn/aliases/champion").status_code == 204
    assert store.models.get("churn").aliases == {}
    is_problem(client.delete("/api/v1/models/churn/aliases/champion"), 404)
    is_problem(client.put("/api/v1/models/churn/aliases/x", json={"version": 7}), 404)
    body = is_problem(client.put("/api/v1/models/churn/aliases/x", json={"versio": 1}), 422)
    assert body["errors"][0]["field"] == "body.version"
