"""The loop controller: each field of a deployment document takes effect, and the state it acts
on survives a killed controller."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import ingest_alerts
from opsloop.aiops.lineage import LineageGraph
from opsloop.context import Project, open_project, set_current_project
from opsloop.errors import AIOpsError
from opsloop.gitops import DeploymentDocument, parse_document
from opsloop.loop.controller import Controller
from opsloop.loop.monitoring import monitor_step
from opsloop.store import IncidentInfo
from tests.gitops.conftest import doc, git
from tests.monitor.test_service import DEPLOYMENT, STEP, T0, _register, _serve

# -- spec.monitoring ---------------------------------------------------------------------------


def _document(name: str, extra: str = "") -> DeploymentDocument:
    return parse_document(doc(name, 8601, extra=extra), f"deploy/{name}.yaml")


def _clone(project: Project, source: str, to: str) -> None:
    """The same requests, served by another deployment."""
    rows = project.store.predictions.read(deployment=source)
    project.store.predictions.log(
        [
            {
                **r.model_dump(exclude={"id"}),
                "request_id": f"{to}-{r.request_id}",
                "deployment": to,
            }
            for r in rows
        ]
    )


def test_each_deployment_is_monitored_with_its_own_settings(project: Project) -> None:
    store = project.store
    _register(store, project.artifacts)
    served = _serve(store, T0, range(6), shifted_from=3)
    for name in ("fast", "lenient", "dark"):
        _clone(project, DEPLOYMENT, name)
    # Labels of the first requests of each window come back a minute after them.
    for name, prefix in ((DEPLOYMENT, ""), ("fast", "fast-")):
        store.predictions.log_feedback(
            [
                {
                    "request_id": f"{prefix}{rid}",
                    "deployment": name,
                    "label": {"value": served.truth[rid]},
                    "time": T0 + w * STEP + timedelta(minutes=1),
                }
                for w in range(6)
                for rid in served.ids[w][:10]
            ]
        )
    documents = {
        # The project's defaults: 15-minute windows, every monitor, Evidently's thresholds.
        DEPLOYMENT: _document(DEPLOYMENT),
        "fast": _document("fast", "  monitoring: {window: 5m, monitors: [service]}\n"),
        "lenient": _document(
            "lenient",
            "  monitoring: {drift: {numeric_method: psi, psi: 1000, categorical_method: psi}}\n",
        ),
        "dark": _document("dark", "  monitoring: {enabled: false}\n"),
    }
    step = monitor_step(
        project, until=T0 + 6 * STEP, documents=documents, scrape=False, progress=False
    )
    assert step.disabled == ["dark"]
    assert step.settings["fast"].window == timedelta(minutes=5)
    assert step.settings[DEPLOYMENT].window == timedelta(minutes=15)

    def series(name: str, deployment: str) -> list[Any]:
        return [
            p
            for n, labels in store.series.list(name)
            if n == name and labels.get("deployment") == deployment
            for p in store.series.read(n, labels)
        ]

    cursor = {d: [p.time for p in series("monitor.window", d)] for d in documents}
    assert len(cursor[DEPLOYMENT]) == 6 and len(cursor["fast"]) == 18
    assert cursor["dark"] == [] and not any(
        labels.get("deployment") == "dark" for _, labels in store.series.list("")
    )
    # Only the monitors a document names run.
    assert series("service.request_rate", "fast")
    assert series("drift.share", "fast") == [] and series("quality.roc_auc", "fast") == []
    assert series("drift.share", DEPLOYMENT) and series("quality.roc_auc", DEPLOYMENT)
    # Its own drift thresholds: the shifted windows drift under the defaults, not here.
    assert max(p.value for p in series("drift.share", DEPLOYMENT)) > 0
    assert max(p.value for p in series("drift.share", "lenient")) == 0


# -- spec.remediation --------------------------------------------------------------------------

POLICIES = """project: demo
remediation:
  policies:
    - {name: first, on: {kinds: [quality_drop]}, actions: [retrain]}
    - {name: second, on: {kinds: [quality_drop]}, actions: [rollback]}
"""


def _incident(deployment: str) -> IncidentInfo:
    return IncidentInfo.model_validate(
        {
            "id": 1,
            "title": "t",
            "kind": "quality_drop",
            "status": "open",
            "severity": "critical",
            "opened_at": T0,
            "updated_at": T0,
            "resolved_at": None,
            "root_causes": [],
            "details": {"deployments": [deployment]},
        }
    )


@pytest.fixture
def repo(project: Project) -> Iterator[Project]:
    (project.dir / "opsloop.yaml").write_text(POLICIES)
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")
    reopened = open_project(project.dir)
    set_current_project(reopened)
    yield reopened
    reopened.close()


def test_a_document_pins_its_remediation_policy(repo: Project) -> None:
    controller = Controller(repo, monitor_every_s=0)
    engine = controller.engine(
        {
            "pinned": _document("pinned", "  remediation: second\n"),
            "never": _document("never", "  remediation: none\n"),
            "free": _document("free"),
        }
    )
    chosen = {d: engine.policy_for(_incident(d)) for d in ("pinned", "never", "free", "other")}
    assert {d: p.name if p else None for d, p in chosen.items()} == {
        "pinned": "second",
        "never": None,
        "free": "first",
        "other": "first",
    }


def test_a_document_naming_an_unknown_policy_is_reported(repo: Project) -> None:
    path = repo.dir / "deploy" / "ghostly.yaml"
    path.parent.mkdir()
    path.write_text(doc("ghostly", 8601, extra="  remediation: ghost\n"))
    git(repo.dir, "add", "-A")
    git(repo.dir, "commit", "-q", "-m", "ghost")
    report = Controller(repo, monitor_every_s=0).run_pass(reconcile=False, monitor=False)
    assert any(
        "deployment 'ghostly' names remediation policy 'ghost'" in e for e in report.errors
    ), report.errors


# -- a killed controller -----------------------------------------------------------------------


class Hanging:
    """A webhook that takes requests and never answers them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests = 0
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    self.requests += 1
            except OSError:
                pass
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_a_killed_controller_leaves_its_action_interrupted_and_nothing_runs_twice(
    project: Project, tmp_path: Path
) -> None:
    hook = Hanging()
    try:
        (project.dir / "opsloop.yaml").write_text(
            "project: demo\nremediation:\n  policies:\n"
            "    - name: page\n      on: {kinds: [quality_drop]}\n      actions: [notify]\n"
            f"      notify: {{webhook: 'http://127.0.0.1:{hook.port}/hook', timeout_s: 120}}\n"
        )
        (project.dir / ".gitignore").write_text(".opsloop/\n")
        git(project.dir, "init", "-q", "-b", "main")
        git(project.dir, "add", "-A")
        git(project.dir, "commit", "-q", "-m", "init")
        alert = AlertIn(
            name="quality-drop",
            labels={"deployment": "churn-prod", "category": "quality_drop"},
            severity="critical",
        )
        (incident,) = ingest_alerts(project.store, [alert], LineageGraph([])).opened
        env = {**os.environ, "OPSLOOP_PROJECT_DIR": str(project.dir)}
        up = [sys.executable, "-m", "opsloop", "up", "--once", "--monitor-every", "0"]
        first = subprocess.Popen(
            up, cwd=project.dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            # Running, and its webhook call under way.
            while hook.requests < 1 or not any(
                a.status == "running" for a in project.store.incidents.list_actions(incident)
            ):
                assert first.poll() is None, first.communicate()[1]
                assert time.monotonic() < deadline, "the notify action never started"
                time.sleep(0.1)
            first.kill()  # kill -9 in the middle of the remediation
        finally:
            first.wait(timeout=30)
            assert first.stderr is not None
            first.stderr.close()
        assert hook.requests == 1

        second = subprocess.run(
            up, check=False, cwd=project.dir, env=env, capture_output=True, text=True
        )
        assert second.returncode == 0, second.stderr
        passes = [json.loads(line) for line in second.stdout.splitlines()]
        (report,) = [p for p in passes if p["event"] == "pass"]
        (action,) = project.store.incidents.list_actions(incident)
        assert report["interrupted"] == [action.id]
        assert action.status == "interrupted" and "it was not run again" in (action.error or "")
        assert project.store.incidents.get(incident).status == "open"
        kinds = [e.kind for e in project.store.events.list(object_id=str(incident))]
        assert "remediation.interrupted" in kinds
        time.sleep(0.5)
        assert hook.requests == 1
    finally:
        hook.close()


# -- the engine the controller builds --------------------------------------------------------

ACTIONS_SPEC = """project: demo
remediation:
  policies:
    - name: errors
      on: {{kinds: [error_rate]}}
      actions: [{actions}]
"""


@pytest.fixture
def git_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "proj"
    folder.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    return folder


@contextmanager
def _project(folder: Path, actions: str) -> Iterator[Project]:
    (folder / "opsloop.yaml").write_text(ACTIONS_SPEC.format(actions=actions))
    project = open_project(folder)
    try:
        yield project
    finally:
        project.close()


def test_a_policy_naming_an_unknown_action_stops_the_loop_from_starting(git_folder: Path) -> None:
    with _project(git_folder, "rollback, rollbak") as project:
        with pytest.raises(AIOpsError) as info:
            Controller(project, monitor_every_s=0)
        assert str(info.value).startswith(
            "policy 'errors': unknown remediation action 'rollbak'; known remediation actions: "
        )
        assert str(info.value).endswith("(did you mean 'rollback'?)")


def test_the_controller_starts_with_known_actions(git_folder: Path) -> None:
    with _project(git_folder, "rollback") as project:
        controller = Controller(project, monitor_every_s=0)
        engine = controller.engine({})
        assert [p.name for p in engine.policies] == ["errors"]
        assert engine.executor is controller.executor
