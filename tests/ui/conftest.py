"""Fixtures of the dashboard's page tests: the API tests' populated project (runs, a data
set, model 'churn' with a champion, deployment 'churn-prod' in Git) plus an incident whose
remediation waits for approval, and TestClients of the server app as admin, viewer, nobody."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from opsloop.aiops.remediation import RemediationEngine
from opsloop.context import Project
from opsloop.spec.remediation import RemediationPolicy
from opsloop.ui import create_server_app
from opsloop.ui.pages import COOKIE
from tests.aiops.test_remediation import RecordingExecutor, open_incident
from tests.api.conftest import Populated, drifting, populated, token_authenticator  # noqa: F401

__all__ = ["parked_incident"]


def parked_incident(
    project: Project,
    deployment: str = "churn-prod",
    webhook: str = "http://127.0.0.1:9/hook",
) -> int:
    """An incident on ``deployment`` whose 'notify' action (to ``webhook``) awaits approval."""
    store = project.store
    engine = RemediationEngine(
        store,
        RecordingExecutor(),
        [
            RemediationPolicy.model_validate(
                {
                    "name": "ask-first",
                    "on": {"kinds": ["error_rate"]},
                    "require_approval": True,
                    "actions": ["notify"],
                    "notify": {"webhook": webhook},
                }
            )
        ],
    )
    inc_id = open_incident(store, "error_rate", deployment)
    engine.remediate(inc_id)
    return inc_id


@pytest.fixture
def incident(populated: Populated) -> int:  # noqa: F811
    return parked_incident(populated.project)


@pytest.fixture
def ui_as(populated: Populated) -> Iterator[Callable[[str | None], TestClient]]:  # noqa: F811
    """TestClients of the server app in tokens mode, logged in with a token (None: not)."""
    app = create_server_app(populated.project, authenticate=token_authenticator)
    opened: list[TestClient] = []

    def make(token: str | None) -> TestClient:
        c = TestClient(app, follow_redirects=False)
        if token:
            c.cookies.set(COOKIE, token)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture
def ui_local(populated: Populated) -> Iterator[TestClient]:  # noqa: F811
    """A TestClient of the server app in local single-user mode."""
    with TestClient(create_server_app(populated.project), follow_redirects=False) as c:
        yield c
