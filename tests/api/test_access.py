"""``GET /api/v1/whoami`` on a real server: local single-user mode, and API tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from opsloop.api import create_app
from opsloop.context import Project
from opsloop.secops.access import local_identity
from opsloop.secops.identities import token_authenticator
from tests.api.live import serving


@pytest.fixture
def server(project: Project) -> Iterator[str]:
    with serving(create_app(project, authenticate=token_authenticator(project.store))) as url:
        yield url


def test_local_mode_is_the_os_user_with_every_role(project: Project) -> None:
    with serving(create_app(project)) as url:
        body = httpx.get(f"{url}/api/v1/whoami").json()
    me = local_identity()
    assert body == {
        "name": me.name,
        "kind": "local",
        "roles": ["viewer", "developer", "deployer", "admin"],
        "grants": [],
    }


def test_whoami_with_a_token(project: Project, server: str) -> None:
    access = project.store.access
    access.create_identity("alice", roles=["developer"])
    access.grant("alice", "deployer", resource_type="model", resource="churn")
    issued = access.issue_token("alice")
    auth = {"Authorization": f"Bearer {issued.token}"}

    resp = httpx.get(f"{server}/api/v1/whoami", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "name": "alice",
        "kind": "user",
        "roles": ["developer"],
        "grants": [{"role": "deployer", "resource_type": "model", "resource": "churn"}],
    }
    # A change of roles counts from the next request.
    access.grant("alice", "viewer")
    assert httpx.get(f"{server}/api/v1/whoami", headers=auth).json()["roles"] == [
        "viewer",
        "developer",
    ]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer opsloop_" + "x" * 43, "Basic YWxpY2U6cHc=", "bearer nope"],
)
def test_no_valid_token_is_401(project: Project, server: str, header: str | None) -> None:
    resp = httpx.get(f"{server}/api/v1/whoami", headers={"Authorization": header} if header else {})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "token" in resp.json()["detail"]


def test_revoked_and_disabled_count_from_the_next_request(project: Project, server: str) -> None:
    access = project.store.access
    access.create_identity("svc", kind="service", roles=["deployer"])
    first, second = access.issue_token("svc"), access.issue_token("svc")

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{server}/api/v1/whoami", headers=headers).status_code

    assert status(first.token) == 200 and status(second.token) == 200
    access.revoke_token(first.info.id)
    assert status(first.token) == 401 and status(second.token) == 200
    access.set_disabled("svc")
    assert status(second.token) == 401


def test_whoami_is_in_the_openapi_document(project: Project) -> None:
    with serving(create_app(project)) as url:
        doc = httpx.get(f"{url}/api/v1/openapi.json").json()
    assert "/api/v1/whoami" in doc["paths"]
    assert set(doc["components"]["schemas"]["WhoAmI"]["properties"]) == {
        "name",
        "kind",
        "roles",
        "grants",
    }
