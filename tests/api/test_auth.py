"""Every route asks who is calling and whether they may: 401 without a token where the
authenticator needs one, 403 for a viewer's writes, 200 for its reads."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import Populated, is_problem

READS = [
    "/api/v1/runs",
    "/api/v1/models",
    "/api/v1/models/churn/versions/1",
    "/api/v1/datasets",
    "/api/v1/deployments",
    "/api/v1/deployments/churn-prod",
    "/api/v1/monitors",
    "/api/v1/series",
    "/api/v1/incidents",
    "/api/v1/alerts",
    "/api/v1/events",
]
WRITES: list[tuple[str, str, dict[str, object] | None]] = [
    ("PUT", "/api/v1/models/churn/aliases/champion", {"version": 2}),
    ("PUT", "/api/v1/models/churn/aliases/staging", {"version": 2}),
    ("DELETE", "/api/v1/models/churn/aliases/champion", None),
    ("POST", "/api/v1/deployments/churn-prod/promote", {"model": "churn", "version": 2}),
    (
        "POST",
        "/api/v1/deployments/churn-prod/traffic",
        {"traffic": [{"version": 2, "weight": 100}]},
    ),
    ("POST", "/api/v1/deployments/churn-prod/rollback", None),
    ("POST", "/api/v1/incidents/1/approve", None),
    ("POST", "/api/v1/incidents/1/reject", None),
]


def test_viewer_reads_but_may_not_write(
    client_as: Callable[[str | None], httpx.Client], populated: Populated
) -> None:
    victor = client_as("viewer-token")
    for path in READS:
        assert victor.get(path).status_code == 200, path
    head = populated.project.store.events.list()[-1].id
    for method, path, body in WRITES:
        r = victor.request(method, path, json=body)
        problem = is_problem(r, 403)
        assert problem["detail"].startswith("victor may not "), problem
        assert problem["hint"].startswith("an admin can grant it")
    # Nothing was written.
    assert populated.project.store.events.list()[-1].id == head
    assert populated.project.store.models.get("churn").aliases == {"champion": 1}


def test_a_developer_moves_unprotected_aliases_only(
    client_as: Callable[[str | None], httpx.Client], populated: Populated
) -> None:
    dora = client_as("dev-token")
    ok = dora.put("/api/v1/models/churn/aliases/staging", json={"version": 2})
    assert ok.status_code == 200, ok.text
    event = populated.project.store.events.list(kind="alias.set")[-1]
    assert (event.actor, event.details["alias"]) == ("dora", "staging")
    body = is_problem(dora.put("/api/v1/models/churn/aliases/champion", json={"version": 2}), 403)
    assert "alias.move_protected" in body["detail"] and "deployer" in body["detail"]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_no_valid_token_is_401(
    client_as: Callable[[str | None], httpx.Client], token: str | None
) -> None:
    anon = client_as(token)
    for path in ("/api/v1/runs", "/api/v1/models/churn"):
        r = anon.get(path)
        body = is_problem(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        assert body["type"].endswith("/authentication")
    r = anon.post("/api/v1/deployments/churn-prod/rollback")
    is_problem(r, 401)
    # A malformed header is no token either.
    r = anon.get("/api/v1/runs", headers={"Authorization": "Basic YWxpY2U6eA=="})
    is_problem(r, 401)


def test_the_document_declares_bearer_auth_only_when_required(
    client: httpx.Client, client_as: Callable[[str | None], httpx.Client]
) -> None:
    with_auth = client_as(None).get("/api/v1/openapi.json").json()
    assert with_auth["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = [op for path in with_auth["paths"].values() for op in path.values()]
    assert operations and all(op["security"] == [{"bearer": []}] for op in operations)
    assert all("401" in op["responses"] and "403" in op["responses"] for op in operations)
    local = client.get("/api/v1/openapi.json").json()
    assert "securitySchemes" not in local["components"]
    assert not any("security" in op for path in local["paths"].values() for op in path.values())
