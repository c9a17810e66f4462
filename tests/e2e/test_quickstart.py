"""The main job as a user runs it: ``opsloop quickstart`` trains and registers a champion,
then closes the loop on it (deploy through Git, drifting traffic with delayed labels, one
incident, retrain → canary → promote); then the commands a user runs next."""

from __future__ import annotations

import re
import subprocess

import pytest

from opsloop.aiops.incidents import get_incident, list_actions, list_incidents
from opsloop.context import open_project
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.loop.demo import DEPLOYMENT
from tests.e2e.conftest import Quickstart, opsloop


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quickstart_closes_the_loop_then_reruns_from_the_cache(quickstart: Quickstart) -> None:
    folder = quickstart.folder
    first = quickstart.result
    out = first.stdout
    assert first.returncode == 0, out[-5000:] + first.stderr[-3000:]

    # The lifecycle.
    assert "created project" in out
    assert "server   # then open http://127.0.0.1:8700/" in out  # the dashboard, next
    assert "registered models:/churn/1 as champion (every gate passed)" in out
    for word in ("data checks", "candidates", "gates", "evaluation report:"):
        assert word in out
    assert list((folder / ".opsloop" / "reports").glob("*/report.html"))

    # The loop: one incident, healed by retrain → canary → promote, quality restored.
    assert f"sync: {DEPLOYMENT} serves churn v1" in out
    assert len(re.findall(r"^window \d+: .*incident #\d+ opened", out, re.MULTILINE)) == 1, out
    for action in ("retrain", "canary", "promote"):
        assert f"{action}: succeeded" in out, out
    assert "incident #1: timeline" in out and "stopped the model server" in out
    quality = re.search(r"ROC AUC on drifted traffic: ([\d.]+) with v1 → ([\d.]+) with v(\d+)", out)
    assert quality is not None, out
    before, after, promoted = float(quality[1]), float(quality[2]), int(quality[3])
    assert promoted > 1 and after > before + 0.2, out

    project = open_project(folder)
    try:
        incident = get_incident(project.store, 1)
        assert incident.kind == "quality_drop" and DEPLOYMENT in incident.deployments
        # The chain succeeded and changed what serves: the policy resolved the incident.
        assert incident.status == "resolved"
        assert len(list_incidents(project.store, status=None)) == 1
        actions = list_actions(project.store, 1)
        assert [(a.action, a.status) for a in actions] == [
            ("retrain", "succeeded"),
            ("canary", "succeeded"),
            ("promote", "succeeded"),
        ]
        # Each pass scraped the running replica: it answered, and nothing failed.
        up = project.store.series.read("service.up")
        assert up and all(p.value == 1.0 for p in up)
        errors = project.store.series.read("service.error_rate")
        assert errors and all(p.value == 0.0 for p in errors)
    finally:
        project.close()
    # Git says the new version serves; the demo stopped its server.
    doc = (folder / "deploy" / f"{DEPLOYMENT}.yaml").read_text(encoding="utf-8")
    assert f"version: {promoted}" in doc
    assert LocalRuntime(folder).live_state() == {}
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    assert f"deploy churn v1 to {DEPLOYMENT}" in log
    assert f"set {DEPLOYMENT} traffic to v1 70%, v{promoted} 30% (was v1)" in log
    assert f"promote churn v{promoted} to {DEPLOYMENT} (was v1 70%, v{promoted} 30%)" in log

    shown = opsloop("incidents", "show", "1", cwd=folder)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "promote" in shown.stdout and "resolved" in shown.stdout

    # Running the lifecycle again: the data and the training come from the cache; the
    # evaluation runs again because the champion it is compared with is the healed version,
    # on the held-out test set and on the deployment's recent labelled traffic.
    second = opsloop("run", cwd=folder)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    phases = dict(
        line.strip("│ ").split(maxsplit=1)
        for line in second.stdout.splitlines()
        if line.startswith("│ ") and line.count("│") == 3
    )
    for phase in ("ingest", "validate", "contract_gate", "split", "featurize", "train"):
        assert phases[phase].strip(" │") == "cached", second.stdout
    assert phases["evaluate"].strip(" │") == "succeeded", second.stdout
    # On the original data the first version beats the healed one; on today's traffic it
    # does not. It is not registered a second time, and the healed version stays champion.
    assert "registered models:/churn/1 as challenger" in second.stdout, second.stdout
    assert "the same training as before" in second.stdout
    lines = second.stdout.splitlines()
    recent = next(line for line in lines if "vs_champion (recent traffic)" in line)
    assert "FAIL" in recent, second.stdout
    project = open_project(folder)
    try:
        assert project.store.models.get_version_by_alias("churn", "champion").version == promoted
    finally:
        project.close()

    models = opsloop("models", "show", "churn", cwd=folder)
    assert models.returncode == 0 and "champion" in models.stdout and "passed" in models.stdout
