"""The closed loop end to end on the churn example: lifecycle, deployment through Git, drifting
traffic with delayed labels, monitoring, an incident, retrain → canary → promote."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from opsloop.aiops.incidents import get_incident
from opsloop.context import open_project, set_current_project
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.lifecycle import run_lifecycle
from opsloop.lifecycle.quickstart import prepare_project
from opsloop.loop.demo import DEPLOYMENT, run_loop_demo


def _prediction_log_keeps_inputs() -> bool:
    # The server hands the store sink its inputs as a lazy ColumnsView; the loop needs them
    # in the prediction log (drift, retraining), so the test runs only where they get there.
    from opsloop.serve.base import ColumnsView
    from opsloop.serve.store_sink import _plain

    try:
        json.dumps(_plain(ColumnsView(["a"], [[1.0]])))
    except TypeError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _prediction_log_keeps_inputs(),
    reason="the store prediction sink cannot serialise ColumnsView inputs yet",
)
def test_the_loop_heals_a_drifted_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder, created = prepare_project(tmp_path / "loop")
    assert created
    monkeypatch.chdir(folder)
    project = open_project(folder)
    set_current_project(project)
    runtime = LocalRuntime(folder)
    out = io.StringIO()
    try:
        outcome = run_lifecycle(project, overrides={"trials": 4, "timeout_s": 20}, progress=False)
        assert outcome.registration and outcome.registration["alias"] == "champion"
        result = run_loop_demo(
            project, Console(file=out, width=160), window_s=15, requests_per_window=520
        )
    finally:
        runtime.stop_all()
        project.close()
        set_current_project(None)
    text = out.getvalue()

    assert result.incident_id is not None, text
    incident = get_incident(open_project(folder).store, result.incident_id)
    assert incident.kind == "quality_drop" and DEPLOYMENT in incident.deployments
    assert sum(len(w.opened) for w in result.windows) == 1, text
    assert [a.action for a in result.actions] == ["retrain", "canary", "promote"]
    assert all(a.status == "succeeded" for a in result.actions), text
    assert result.promoted_version is not None and result.promoted_version > result.first_version
    assert result.timeline and any(e.what.startswith("promote") for e in result.timeline)
    before, after = result.quality("before"), result.quality("after")
    assert before is not None and after is not None and after > before + 0.2, text
    # Git says the new version serves, and the demo stopped its server.
    doc = (folder / "deploy" / f"{DEPLOYMENT}.yaml").read_text()
    assert f"version: {result.promoted_version}" in doc
    assert LocalRuntime(folder).live_state() == {}
    assert "timeline" in text and "stopped the model server" in text
