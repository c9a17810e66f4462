"""A quickstart-like project for the dashboard's browser tests and benchmark, built in
seconds: runs with metric histories and an evaluation report, a data set, a champion, a
deployment in Git as the reconciler last saw it, monitoring series and an incident that
waits for approval."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project, open_project, set_current_project
from opsloop.gitops import promote
from opsloop.registry import register_model
from opsloop.tracking import start_run
from tests.gitops.conftest import git
from tests.ui.conftest import parked_incident

__all__ = ["build_project", "webhook_receiver"]

DIGEST = "sha256:" + "cd" * 32
FEATURES = ("tenure", "monthly_charges", "contract", "support_calls")


def webhook_receiver() -> tuple[HTTPServer, list[dict[str, Any]]]:
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
    change = promote("churn", to="churn-prod", alias="champion", project=project)
    # What the reconciler records after applying the document (no model server runs here).
    spec = yaml.safe_load((folder / change.file).read_text())["spec"]
    synced = datetime.now(UTC)
    project.store.deployments.record_sync(
        "churn-prod",
        revision=change.commit,
        started_at=synced,
        result="succeeded",
        diff={},
        details={"version": 1},
    )
    project.store.deployments.save_status(
        "churn-prod",
        revision=change.commit,
        desired=spec,
        live=spec,
        sync_status="Synced",
        health_status="Healthy",
        reason="serving churn v1",
    )
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
