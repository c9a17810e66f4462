"""/api/v1/deployments: desired state from Git, status, and changes committed for the caller."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from opsloop.gitops import parse_document
from tests.api.conftest import Populated, is_problem
from tests.gitops.conftest import git


def _head(populated: Populated) -> tuple[str, str]:
    out = git(populated.project.dir, "log", "-1", "--format=%an|%s")
    author, _, subject = out.partition("|")
    return author, subject


def test_list_and_get(client: httpx.Client, populated: Populated) -> None:
    [dep] = client.get("/api/v1/deployments").json()["items"]
    assert dep["name"] == "churn-prod" and dep["file"] == "deploy/churn-prod.yaml"
    assert (dep["model"], dep["version"], dep["traffic"]) == ("churn", 1, [])
    assert dep["desired"]["spec"]["model"] == "churn"
    assert dep["revision"] == git(populated.project.dir, "rev-parse", "HEAD")
    assert dep["sync_status"] == "Unknown"  # never synced
    assert client.get("/api/v1/deployments/churn-prod").json() == dep
    is_problem(client.get("/api/v1/deployments/nope"), 404)
    assert client.get("/api/v1/deployments/churn-prod/syncs").json() == []
    [commit] = client.get("/api/v1/deployments/churn-prod/commits").json()
    assert commit["subject"].startswith("deploy churn v1")


def test_promote_traffic_rollback_are_commits_by_the_caller(
    client_as: Callable[[str | None], httpx.Client], populated: Populated
) -> None:
    dana = client_as("deployer-token")  # a deployer of churn-prod only
    r = dana.post("/api/v1/deployments/churn-prod/promote", json={"model": "churn", "version": 2})
    assert r.status_code == 200, r.text
    change = r.json()
    assert change["version"] == 2 and change["commit"]
    assert _head(populated) == ("opsloop (dana)", change["message"])
    event = populated.project.store.events.list(kind="deployment.promoted")[-1]
    assert event.actor == "dana"

    r = dana.post(
        "/api/v1/deployments/churn-prod/traffic",
        json={"traffic": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]},
    )
    assert r.status_code == 200, r.text
    spec = parse_document(
        git(populated.project.dir, "show", "HEAD:deploy/churn-prod.yaml"), "d"
    ).spec
    assert [(t.version, t.weight) for t in spec.traffic or []] == [(1, 90), (2, 10)]
    shown = dana.get("/api/v1/deployments/churn-prod").json()
    assert shown["traffic"] == [{"version": 1, "weight": 90.0}, {"version": 2, "weight": 10.0}]

    r = dana.post("/api/v1/deployments/churn-prod/rollback")
    assert r.status_code == 200, r.text
    assert _head(populated)[0] == "opsloop (dana)"
    assert r.json()["version"] == 2  # the split is reverted: v2 alone again

    # Refusals are problems, and nothing is committed.
    before = git(populated.project.dir, "rev-parse", "HEAD")
    body = is_problem(
        dana.post(
            "/api/v1/deployments/churn-prod/traffic",
            json={"traffic": [{"version": 1, "weight": 50}, {"version": 2, "weight": 10}]},
        ),
        422,
    )
    assert "100" in body["detail"]
    is_problem(dana.post("/api/v1/deployments/churn-prod/promote", json={"model": "nope"}), 404)
    is_problem(
        dana.post("/api/v1/deployments/churn-prod/rollback", json={"to": "no-such-rev"}), 409
    )
    is_problem(dana.post("/api/v1/deployments/churn-prod/rollback", json={"to": "--output=x"}), 422)
    assert git(populated.project.dir, "rev-parse", "HEAD") == before
    # On another deployment dana is only a viewer.
    body = is_problem(dana.post("/api/v1/deployments/other/promote", json={"model": "churn"}), 403)
    assert "dana may not deploy on deployment 'other'" in body["detail"]
