"""The dashboard's pages through the server app: every page renders for an admin and a
viewer, a viewer sees no action buttons, a visitor without a token is sent to log in, and the
OpenAPI document does not list the pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsloop.api import create_app
from opsloop.context import open_project
from opsloop.store import UsageRecord
from opsloop.ui import create_server_app
from opsloop.ui.pages import COOKIE
from tests.api.conftest import Populated

BUTTON = re.compile(r"<button[^>]*>(?!Log out|Apply|Filter|Show|Compare)", re.IGNORECASE)


def _pages(populated: Populated, incident: int) -> list[str]:
    run = populated.runs[0]
    digest = populated.project.store.models.get_version("churn", 1).dataset_digest
    return [
        "/",
        "/fragments/overview",
        "/runs",
        "/runs?q=train&order_by=-metrics.accuracy&filter=params.model%3Dlogreg",
        f"/runs/{run}",
        f"/runs/compare?id={populated.runs[0]}&id={populated.runs[1]}",
        "/models",
        "/models/churn",
        "/models/churn/versions/1",
        "/deployments",
        "/deployments/churn-prod",
        "/incidents",
        f"/incidents/{incident}",
        "/monitoring",
        "/monitoring?deployment=churn-prod&feature=f1&until=2026-01-01T00:15:00Z",
        "/data",
        f"/data/{digest}",
        "/costs",
        "/costs?by=deployment&days=7",
        "/costs?by=colour&days=99999",
        "/audit",
        "/audit?kind=model.*",
    ]


def test_every_page_renders_for_admin_and_viewer(
    ui_as: Callable[[str | None], TestClient], populated: Populated, incident: int
) -> None:
    admin, viewer = ui_as("admin-token"), ui_as("viewer-token")
    for path in _pages(populated, incident):
        for client in (admin, viewer):
            got = client.get(path)
            assert got.status_code == 200, (path, got.text[-2000:])
            assert got.headers["content-type"].startswith("text/html")
        if path.startswith("/fragments"):
            continue
        seen = viewer.get(path).text
        assert not BUTTON.search(seen), (path, BUTTON.findall(seen))
    # The admin has the buttons where they act.
    assert "Promote…" in admin.get("/deployments/churn-prod").text
    assert "Approve and run" in admin.get(f"/incidents/{incident}").text
    assert "Point alias at v1" in admin.get("/models/churn/versions/1").text


def test_without_a_token_every_page_sends_to_login(
    ui_as: Callable[[str | None], TestClient], populated: Populated, incident: int
) -> None:
    nobody = ui_as(None)
    for path in _pages(populated, incident):
        got = nobody.get(path)
        if path.startswith("/fragments"):
            assert got.status_code == 401
            continue
        assert got.status_code == 303, path
        assert got.headers["location"].startswith("/login?next=")
    assert nobody.get("/login").status_code == 200
    bad = nobody.post("/login", data={"token": "nope", "next": "/runs"})
    assert bad.status_code == 401 and "not accepted" in bad.text
    assert COOKIE not in bad.cookies


def test_login_sets_a_strict_httponly_cookie_and_refuses_open_redirects(
    ui_as: Callable[[str | None], TestClient],
) -> None:
    client = ui_as(None)
    got = client.post("/login", data={"token": "viewer-token", "next": "//evil.example/x"})
    assert got.status_code == 303 and got.headers["location"] == "/"
    cookie = got.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/runs").status_code == 200
    assert client.post("/logout").status_code == 303
    assert client.get("/runs").status_code == 303


def test_local_mode_needs_no_login(ui_local: TestClient) -> None:
    assert ui_local.get("/login").status_code == 303
    page = ui_local.get("/")
    assert page.status_code == 200 and "churn-prod" in page.text
    assert ui_local.get("/vendor/plotly.min.js").status_code == 200
    assert ui_local.get("/static/app.js").status_code == 200


def test_the_openapi_document_is_the_apis_alone(populated: Populated) -> None:
    with (
        TestClient(create_server_app(populated.project)) as served,
        TestClient(create_app(populated.project)) as api,
    ):
        assert served.get("/api/v1/openapi.json").json() == api.get("/api/v1/openapi.json").json()


@pytest.mark.parametrize(
    "header", [{"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}]
)
def test_a_form_from_another_site_is_refused(
    ui_as: Callable[[str | None], TestClient], header: dict[str, str], populated: Populated
) -> None:
    admin = ui_as("admin-token")
    got = admin.post("/deployments/churn-prod/rollback", headers=header)
    assert got.status_code == 403
    assert len(populated.project.store.events.list(kind="deployment.*", limit=1000)) >= 0


COSTS_YAML = """\
project: demo
finops:
  currency: EUR
  rate_cards: [{name: card, vcpu_hour: 1.0, requests_per_million: 100.0}]
  budgets:
    - {deployment: churn-prod, monthly: 2, actual: [0.5, 1.0], forecast: [1.0]}
"""


def test_the_costs_page_shows_the_breakdown_the_days_and_the_budgets(
    populated: Populated,
) -> None:
    root = populated.project.dir
    (root / "opsloop.yaml").write_text(COSTS_YAML)
    project = open_project(root)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    project.store.usage.add(
        [
            UsageRecord(
                hour,
                "replica",
                {"deployment": "churn-prod", "model": "churn", "version": "1"},
                {"reserved_cpu_s": 7200, "cpu_s": 3600, "requests": 10_000},
            )
        ]
    )
    with TestClient(create_server_app(project), follow_redirects=False) as client:
        page = client.get("/costs", params={"by": "deployment"})
    assert page.status_code == 200, page.text[-2000:]
    text = page.text
    assert "3.00 EUR" in text  # used 1 + idle 1 + requests 1
    assert "<td>churn-prod</td>" in text
    assert 'aria-current="page"' in text.split('href="/costs"')[1][:30]
    assert "cost by what it paid for (EUR)" in text and "cost per day (EUR)" in text
    # The budget of 2 EUR is spent past both thresholds.
    assert "spent 50 %" in text and "spent 100 %" in text
