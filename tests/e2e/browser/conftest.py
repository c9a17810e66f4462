"""The dashboard in a real browser: Debian's Chromium driven by Playwright, one browser per
test session, against one project built once per session and served by the real server app
(uvicorn on a free port) in tokens mode.

Every page a test visits is saved as a screenshot under ``OPSLOOP_SCREENSHOT_DIR`` (default
``tests-output/screenshots/``), and a test fails on any console error or failed request.
Without Chromium the tests skip, unless ``OPSLOOP_REQUIRE_BROWSER`` is set (CI), where they
fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project, open_project, set_current_project
from opsloop.gitops import promote
from opsloop.registry import register_model
from opsloop.tracking import start_run
from opsloop.ui import create_server_app
from tests.api.conftest import running, token_authenticator
from tests.gitops.conftest import git
from tests.ui.conftest import parked_incident

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[3]
SHOTS = Path(os.environ.get("OPSLOOP_SCREENSHOT_DIR", ROOT / "tests-output" / "screenshots"))
DIGEST = "sha256:" + "cd" * 32
FEATURES = ("tenure", "monthly_charges", "contract", "support_calls")


@dataclass
class Site:
    """The served project: its base URL, the project, its runs and the waiting incident."""

    url: str
    project: Project
    runs: list[str]
    incident: int
    hook_bodies: list[dict[str, Any]]


def _hook() -> tuple[HTTPServer, list[dict[str, Any]]]:
    """A webhook receiver on 127.0.0.1 that the waiting 'notify' remediation posts to."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", 0))
            bodies.append(json.loads(self.rfile.read(size) or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def build_project(folder: Path, webhook: str) -> tuple[Project, list[str], int]:
    """A quickstart-like project: runs with metric histories and an evaluation report, a data
    set version, model 'churn' v1..v2 (champion → v1), deployment 'churn-prod' serving v1
    through Git, monitoring series (drift per feature, quality, service health) and an
    incident whose remediation waits for approval."""
    folder.mkdir(parents=True)
    (folder / "opsloop.yaml").write_text("project: churn-demo\n")
    (folder / ".gitignore").write_text(".opsloop/\nevaluation/\n")
    project = open_project(folder)
    set_current_project(project)  # the registry registers into the current project
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "init")
    report = folder / "evaluation"
    report.mkdir()
    (report / "report.html").write_text(
        "<!doctype html><html><head><title>Evaluation report</title></head>"
        "<body><h1>Evaluation report</h1><p>ROC AUC 0.91 on the test split.</p></body></html>"
    )
    runs = []
    for i, (c, model) in enumerate(((0.5, "logreg"), (1.5, "logreg-l1"))):
        with start_run(f"train-{i}", params={"C": c, "model": model}, project=project) as r:
            for step in range(60):
                r.log_metric("loss", 1.0 / (step + 1 + i) + 0.01 * np.sin(step), step=step)
            r.log_metric("test_roc_auc", 0.86 + 0.05 * i)
            r.log_artifact(report)
            runs.append(r.id)
    project.store.datasets.record(
        DIGEST,
        source="data/churn.csv",
        row_count=60,
        schema={f: "float64" for f in FEATURES},
        name="churn",
    )
    rng = np.random.default_rng(7)
    x = pd.DataFrame({f: rng.normal(size=60) for f in FEATURES})
    y = (x["tenure"] + x["contract"] > 0).astype(int)
    for i, c in enumerate((0.5, 1.5)):
        register_model(
            "churn",
            LogisticRegression(C=c).fit(x, y),
            input_example=x.head(3),
            run_id=runs[i],
            dataset_digest=DIGEST,
        )
    project.store.models.set_alias("churn", "champion", 1)
    promote("churn", to="churn-prod", alias="champion", project=project)
    start = datetime.now(UTC) - timedelta(hours=24)
    points: list[tuple[str, dict[str, str], datetime, float]] = []
    version = {"deployment": "churn-prod", "model": "churn", "version": "1"}
    for w in range(24):
        t = start + timedelta(hours=w)
        late = max(0, w - 14)
        for j, f in enumerate(FEATURES):
            psi = 0.02 + 0.01 * j + (0.04 * late if f == "tenure" else 0.0)
            points.append(("drift.psi", {**version, "feature": f}, t, psi))
            points.append(("drift.ks", {**version, "feature": f}, t, min(1.0, psi * 1.5)))
        points.append(("drift.share", version, t, 0.25 if late > 2 else 0.0))
        points.append(("quality.roc_auc", version, t, 0.9 - 0.015 * late))
        points.append(("service.request_rate", {"deployment": "churn-prod"}, t, 4 + w % 3))
        points.append(("service.latency_p50", {"deployment": "churn-prod"}, t, 12.0 + w % 4))
        points.append(("service.latency_p99", {"deployment": "churn-prod"}, t, 40.0 + w % 7))
    project.store.series.append(points)
    incident = parked_incident(project, "churn-prod", webhook)
    return project, runs, incident


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    hook, bodies = _hook()
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium (Playwright's own browser download cannot work here)."""
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
