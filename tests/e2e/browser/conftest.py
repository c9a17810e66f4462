"""The dashboard in a real browser: Debian's Chromium driven by Playwright, one browser per
test session, against one project built once per session and served by the real server app
(uvicorn on a free port) in tokens mode.

Every page a test visits is saved as a screenshot under ``OPSLOOP_SCREENSHOT_DIR`` (default
``tests-output/screenshots/``), and a test fails on any console error or failed request.
Without Chromium the tests skip, unless ``OPSLOOP_REQUIRE_BROWSER`` is set (CI), where they
fail."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsloop.context import Project, set_current_project
from opsloop.ui import create_server_app
from tests.api.conftest import running, token_authenticator
from tests.e2e.browser.project import build_project, webhook_receiver

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[3]
SHOTS = Path(os.environ.get("OPSLOOP_SCREENSHOT_DIR", ROOT / "tests-output" / "screenshots"))


@dataclass
class Site:
    """The served project: its base URL, the project, its runs and the waiting incident."""

    url: str
    project: Project
    runs: list[str]
    incident: int
    hook_bodies: list[dict[str, Any]]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    hook, bodies = webhook_receiver()
    folder = tmp_path_factory.mktemp("dashboard") / "churn-demo"
    saved = {k: os.environ.pop(k, None) for k in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL")}
    project, runs, incident = build_project(
        folder, f"http://127.0.0.1:{hook.server_address[1]}/hook"
    )
    try:
        app = create_server_app(project, authenticate=token_authenticator)
        with running(app) as url:
            yield Site(url, project, runs, incident, bodies)
    finally:
        set_current_project(None)
        project.close()
        hook.shutdown()
        hook.server_close()
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (Playwright's own browser download cannot work here). One per
    module: Playwright's synchronous API keeps an event loop running in the thread while it
    is open, and a test of another module that runs asyncio would find it."""
    executable = shutil.which("chromium")
    if executable is None:
        reason = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("OPSLOOP_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    with playwright_sync.sync_playwright() as p:
        found = p.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield found
        finally:
            found.close()


@dataclass
class Visit:
    """A browser page that records problems and screenshots every page it lands on."""

    page: Any
    name: str
    problems: list[str] = field(default_factory=list)
    shots: int = 0

    def shot(self, label: str = "") -> Path:
        self.page.wait_for_load_state("networkidle")
        self.shots += 1
        slug = re.sub(r"[^a-z0-9]+", "-", (label or self.page.url.split("//", 1)[-1]).lower())
        path = SHOTS / self.name / f"{self.shots:02d}-{slug.strip('-')[:60]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def go(self, url: str, label: str = "") -> Path:
        self.page.goto(url)
        return self.shot(label)


@pytest.fixture
def visit(browser: Any, site: Site, request: pytest.FixtureRequest) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    v = Visit(page, request.node.name)

    def on_console(message: Any) -> None:
        if message.type == "error":
            v.problems.append(f"console error on {page.url}: {message.text}")

    def on_failed(req: Any) -> None:
        # A poll cut short by leaving the page is no failure of the page.
        if "/fragments/" in req.url and "ERR_ABORTED" in (req.failure or ""):
            return
        v.problems.append(f"request failed: {req.method} {req.url}: {req.failure}")

    def on_response(response: Any) -> None:
        if response.status >= 500:
            v.problems.append(f"{response.status} from {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: v.problems.append(f"page error on {page.url}: {exc}"))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        yield v
    finally:
        context.close()
    assert not v.problems, "\n".join(v.problems)


def log_in(v: Visit, token: str) -> None:
    """Log in through the login page (any page sends there first)."""
    v.go("/", "login")
    assert "/login" in v.page.url
    v.page.get_by_label("API token").fill(token)
    v.page.get_by_role("button", name="Log in").click()
    v.page.wait_for_url(re.compile(r"/$"))
