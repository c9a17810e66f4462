"""``opsloop up`` heals a drifted deployment, outside the quickstart.

The churn project is trained once (no loop), deployed through Git, and ``opsloop up`` runs in
a process of its own. This test is the traffic: it sends requests over HTTP whose churn
relation has turned over (the labels it sends back a second later are the opposite of what
the data says), and watches the loop open an incident, retrain on the recent labelled
traffic, canary the new version (a commit), promote it (a commit) and resolve the incident.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from opsloop.context import Project, open_project, set_current_project
from opsloop.gitops import promote
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.lifecycle import run_lifecycle
from opsloop.lifecycle.quickstart import prepare_project
from tests.gitops.conftest import git
from tests.processes import stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DEPLOYMENT = "churn-live"
SECTIONS = """
monitoring: {grace: 2s}
alerts:
  rules:
    - name: auc-drop
      series: quality.roc_auc
      where: {deployment: churn-live}
      op: "<"
      threshold: 0.65
      for: 2
      severity: critical
      category: quality_drop
remediation:
  policies:
    - name: heal
      on: {kinds: [quality_drop]}
      actions: [retrain, canary, promote]
      cooldown_s: 600
      retrain: {window_s: 45, overrides: {trials: 2, timeout_s: 15}}
      canary: {weight: 40, hold_s: 6, min_requests: 20, max_metric_drop: 0.02}
"""


BATCH = 10


class Traffic:
    """Requests of ten rows whose labels come back inverted, a second late."""

    def __init__(self, url: str, rows: pd.DataFrame, truth: pd.Series) -> None:
        self.url = url
        # Missing values travel as JSON null.
        self.rows = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
        self.truth = [int(v) for v in truth]
        self.sent = 0
        self.labelled = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pending: list[tuple[float, str, list[int]]] = []
        i = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                at = [(i + k) % len(self.rows) for k in range(BATCH)]
                i += BATCH
                rows = [self.rows[k] for k in at]
                labels = [1 - self.truth[k] for k in at]
                try:
                    answer = client.post(
                        f"{self.url}/invocations", json={"dataframe_records": rows}
                    )
                    if answer.status_code == 200:
                        rid = answer.headers["x-request-id"]
                        pending.append((time.monotonic() + 1.0, rid, labels))
                        self.sent += 1
                    else:
                        self.errors.append(f"{answer.status_code}: {answer.text[:200]}")
                    due = [p for p in pending if p[0] <= time.monotonic()]
                    if due:
                        pending = [p for p in pending if p[0] > time.monotonic()]
                        sent = client.post(
                            f"{self.url}/v1/feedback",
                            json=[{"request_id": rid, "label": y} for _, rid, y in due],
                        )
                        if sent.status_code != 200:
                            self.errors.append(f"feedback {sent.status_code}: {sent.text[:200]}")
                        else:
                            self.labelled += len(due) * BATCH
                except (httpx.HTTPError, ValueError) as exc:
                    # A server restarted by a sync: the next request goes to the new one.
                    self.errors.append(str(exc))
                    time.sleep(0.2)
                time.sleep(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder, _ = prepare_project(tmp_path / "churn")
    monkeypatch.chdir(folder)
    proj = open_project(folder)
    set_current_project(proj)
    outcome = run_lifecycle(proj, overrides={"trials": 2, "timeout_s": 10}, progress=False)
    assert outcome.registration and outcome.registration["alias"] == "champion"
    spec_file = folder / "opsloop.yaml"
    spec_file.write_text(spec_file.read_text() + SECTIONS)
    (folder / ".gitignore").write_text(".opsloop/\ndata/retrain/\n")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "the churn project")
    proj.close()
    proj = open_project(folder)
    set_current_project(proj)
    yield proj
    proj.close()
    set_current_project(None)


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_opsloop_up_heals_a_drifted_deployment(trained: Project, tmp_path: Path) -> None:
    store = trained.store
    change = promote(
        "churn",
        to=DEPLOYMENT,
        alias="champion",
        project=trained,
        monitoring={"window": "10s"},
        remediation="heal",
    )
    assert change.commit is not None
    log = tmp_path / "up.log"
    env = {**os.environ, "OPSLOOP_PROJECT_DIR": str(trained.dir)}
    with log.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "opsloop", "up", "--interval", "1", "--monitor-every", "2"],
            cwd=trained.dir,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            record = store.deployments.get(DEPLOYMENT)
            if record is not None and record.health_status == "Healthy":
                break
            assert up.poll() is None, up.communicate()[1]
            assert time.monotonic() < deadline, "the deployment did not become healthy"
            time.sleep(0.5)
        url = str(record.live["endpoints"][0])
        data = pd.read_parquet(trained.dir / "data" / "customers.parquet")
        rows = data.drop(columns=["customer_id", "signup_date", "churned"])
        with Traffic(url, rows, data["churned"]) as traffic:
            deadline = time.monotonic() + 240
            while True:
                incidents = store.incidents.list()
                if incidents and incidents[0].status == "resolved":
                    break
                assert up.poll() is None, up.communicate()[1]
                assert time.monotonic() < deadline, (
                    f"not healed: incidents {incidents}, actions "
                    f"{store.incidents.list_actions()}, traffic {traffic.sent} sent, "
                    f"{traffic.labelled} rows labelled, "
                    f"errors {traffic.errors[-3:]}, log {log.read_text()[-3000:]}"
                )
                time.sleep(1)
    finally:
        err = stop(up, signal.SIGTERM, timeout=120)
        # Model servers outlive the service that started them (by design): stop them here,
        # so that none is left holding the deployment's port after the test.
        LocalRuntime(trained.dir).stop_all()
    assert up.returncode == 0, err

    (incident,) = store.incidents.list()
    assert incident.kind == "quality_drop" and incident.deployments == [DEPLOYMENT]
    actions = {a.action: a for a in store.incidents.list_actions(incident.id)}
    assert {name: a.status for name, a in actions.items()} == {
        "retrain": "succeeded",
        "canary": "succeeded",
        "promote": "succeeded",
    }
    new = int(actions["retrain"].result["version"])
    assert new == 2 and actions["promote"].result["version"] == new
    subjects = git(trained.dir, "log", "--format=%s", f"{change.commit}..HEAD").splitlines()
    assert len(subjects) == 2, subjects
    canary, promoted = reversed(subjects)
    assert DEPLOYMENT in canary and "v2" in canary
    assert DEPLOYMENT in promoted and "v2" in promoted
    # What serves now, per Git and per the running server's record.
    assert store.deployments.get(DEPLOYMENT).desired["spec"]["version"] == new
    # The service wrote one line per pass and per action.
    records = _records(log)
    events = [r["event"] for r in records]
    assert events[0] == "start" and events[-1] == "stop"
    assert [r["action"] for r in records if r["event"] == "action"] == [
        "retrain",
        "canary",
        "promote",
    ]
    assert any(incident.id in r.get("monitor", {}).get("opened", []) for r in records)
