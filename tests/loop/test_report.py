"""``opsloop monitor report`` uses the deployment's own monitoring window and says which."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from opsloop.cli.main import app
from opsloop.context import Project, open_project, set_current_project
from opsloop.loop.monitoring import monitor_step, report_window, write_report
from tests.gitops.conftest import doc, git
from tests.monitor.test_service import DEPLOYMENT, STEP, T0, _register, _serve

UNTIL = T0 + 2 * STEP


def _commit(project: Project, spec: str, document: str | None) -> Project:
    """The project under Git with this ``opsloop.yaml`` and deployment document."""
    (project.dir / "opsloop.yaml").write_text(spec)
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    if document is not None:
        (project.dir / "deploy").mkdir(exist_ok=True)
        (project.dir / "deploy" / f"{DEPLOYMENT}.yaml").write_text(document)
    if not (project.dir / ".git").exists():
        git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "settings")
    reopened = open_project(project.dir)
    set_current_project(reopened)
    return reopened


def _text(path: Path) -> str:
    return html.unescape(path.read_text(encoding="utf-8"))


def test_the_report_uses_the_deployments_own_window(project: Project, tmp_path: Path) -> None:
    _register(project.store, project.artifacts)
    _serve(project.store, T0, range(2))
    own = doc(DEPLOYMENT, 8601, extra="  monitoring: {window: 5m}\n")
    proj = _commit(project, "project: demo\nmonitoring: {window: 30m}\n", own)
    try:
        assert report_window(proj, DEPLOYMENT) == (
            timedelta(minutes=5),
            f"spec.monitoring.window of deploy/{DEPLOYMENT}.yaml",
        )
        monitor_step(proj, until=UNTIL, scrape=False)
        written = write_report(proj, DEPLOYMENT, tmp_path / "own.html")
        assert written.window == timedelta(minutes=5)
        text = _text(written.path)
        # The last 5-minute window monitored, not the project's 30 minutes.
        assert "[2026-03-02 00:25:00, 2026-03-02 00:30:00) UTC, 5m long: " in text
        assert f"spec.monitoring.window of deploy/{DEPLOYMENT}.yaml" in text

        result = CliRunner().invoke(
            app, ["monitor", "report", DEPLOYMENT, "--out", str(tmp_path / "cli.html")]
        )
        assert result.exit_code == 0, result.output
        assert f"window 300s: spec.monitoring.window of deploy/{DEPLOYMENT}.yaml" in (
            " ".join(result.output.split())
        )
        # --window wins, and the report says it was given.
        given = write_report(proj, DEPLOYMENT, tmp_path / "given.html", window=STEP)
        assert "[2026-03-02 00:15:00, 2026-03-02 00:30:00) UTC, 15m long: given with --window" in (
            _text(given.path)
        )
    finally:
        proj.close()


def test_without_its_own_window_the_report_uses_the_projects(
    project: Project, tmp_path: Path
) -> None:
    _register(project.store, project.artifacts)
    _serve(project.store, T0, range(2))
    proj = _commit(project, "project: demo\nmonitoring: {window: 30m}\n", doc(DEPLOYMENT, 8601))
    try:
        assert report_window(proj, DEPLOYMENT) == (
            timedelta(minutes=30),
            "monitoring.window of opsloop.yaml",
        )
        written = write_report(proj, DEPLOYMENT, tmp_path / "r.html", until=UNTIL)
        assert "[2026-03-02 00:00:00, 2026-03-02 00:30:00) UTC, 30m long: monitoring.window" in (
            _text(written.path)
        )
    finally:
        proj.close()
    bare = _commit(proj, "project: demo\n", None)
    try:
        window, source = report_window(bare, DEPLOYMENT)
        assert window == timedelta(minutes=15) and source.startswith("the default")
    finally:
        bare.close()


def test_after_quiet_windows_the_report_shows_the_last_window_with_requests(
    project: Project, tmp_path: Path
) -> None:
    # Monitoring goes on for two hours after the last request (opsloop up keeps running);
    # the report must not pick the latest, empty window.
    _register(project.store, project.artifacts)
    _serve(project.store, T0, range(2))
    proj = _commit(project, "project: demo\nmonitoring: {window: 15m}\n", doc(DEPLOYMENT, 8601))
    try:
        monitor_step(proj, until=UNTIL + timedelta(hours=2), scrape=False)
        written = write_report(proj, DEPLOYMENT, tmp_path / "quiet.html")
        assert "[2026-03-02 00:15:00, 2026-03-02 00:30:00) UTC, 15m long: " in _text(written.path)
    finally:
        proj.close()
