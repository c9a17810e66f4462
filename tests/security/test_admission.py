"""Admission: a version the policy refuses (here, one whose recorded scan found a pickle that
runs a shell command) cannot become champion, cannot be deployed by the reconciler and is not
loaded by the model server; every refusal is an event in the store."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project, open_project
from opsloop.errors import SecurityError
from opsloop.gitops import Reconciler
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.gitops.types import HealthStatus
from opsloop.lifecycle.aliases import move_alias
from opsloop.registry import load_model, register_model, set_alias
from opsloop.registry.admission import REFUSED_EVENT, admission_policy
from opsloop.secops import scan_path
from tests.gitops.conftest import (  # noqa: F401  (fixtures)
    commit_doc,
    doc,
    repo_project,
    tiny_runtime,
)
from tests.ports import free_port

SCAN_FAILED = "its model scan failed; its scan found 1 critical"


class _Shell:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


def _fail_the_scan(project: Project, version: int, tmp_path: Path) -> None:
    """Record on the version the real scan of a pickle that runs a shell command."""
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Shell(), protocol=4))
    report = scan_path(evil)
    assert report.status == "failed"
    project.store.models.update_version("churn", version, details={"scan": report.summary()})


@pytest.fixture
def churn(project: Project, tmp_path: Path) -> Project:
    """'churn' v1 (clean, champion) and v2, whose recorded scan failed."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = (x["a"] > 0).astype(int)
    register_model(
        "churn", LogisticRegression(C=0.5).fit(x, y), input_example=x.head(2), alias="champion"
    )
    register_model("churn", LogisticRegression(C=2.0).fit(x, y), input_example=x.head(2))
    _fail_the_scan(project, 2, tmp_path)
    return project


def _refusals(project: Project) -> list[dict[str, object]]:
    events = project.store.events.list(kind=REFUSED_EVENT)
    return [{"object": e.object_id, **e.details} for e in events]


def test_a_failing_version_cannot_become_champion(churn: Project) -> None:
    message = f"model 'churn' version 2 cannot become churn@champion: {SCAN_FAILED}"
    with pytest.raises(SecurityError, match=message):
        move_alias(churn.store, "churn", "champion", 2)
    with pytest.raises(SecurityError, match=message):
        set_alias("churn", "champion", 2)
    assert churn.store.models.get_version_by_alias("churn", "champion").version == 1
    refusals = _refusals(churn)
    assert len(refusals) == 2
    assert refusals[0]["object"] == "churn/2"
    assert refusals[0]["where"] == "alias" and refusals[0]["alias"] == "champion"
    assert refusals[0]["reasons"] == [
        "its model scan failed",
        "its scan found 1 critical (the policy allows up to medium)",
    ]
    # Not even the alias of versions that failed their gates may point at it.
    with pytest.raises(SecurityError, match="cannot become churn@challenger"):
        move_alias(churn.store, "churn", "challenger", 2)


def test_the_cli_refuses_the_alias_move(churn: Project) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "models", "alias", "set", "churn", "champion", "2"],
        cwd=churn.dir,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "version 2 cannot become churn@champion: its model scan failed" in _flat(out)
    assert churn.store.models.get_version_by_alias("churn", "champion").version == 1


def test_failed_gates_keep_a_version_from_champion_but_not_from_challenger(
    churn: Project,
) -> None:
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    gates = {"gates": [{"name": "auc_min", "passed": False}], "gates_passed": False}
    with pytest.raises(
        SecurityError,
        match="new version cannot become churn@champion: it failed its gates: auc_min",
    ):
        register_model("churn", model, input_example=x, alias="champion", details=gates)
    assert [v.version for v in churn.store.models.list_versions("churn")] == [2, 1]
    v3 = register_model("churn", model, input_example=x, alias="challenger", details=gates)
    assert v3.aliases == ["challenger"]
    with pytest.raises(SecurityError, match="it failed its gates: auc_min"):
        move_alias(churn.store, "churn", "champion", v3.version)
    assert _refusals(churn)[0] == {
        "object": "churn",
        "where": "alias",
        "alias": "champion",
        "reasons": ["it failed its gates: auc_min"],
    }


def test_the_reconciler_refuses_to_deploy_it_and_the_old_version_keeps_serving(
    repo_project: Project,  # noqa: F811
    churn: Project,
    commit_doc: Callable[..., str],  # noqa: F811
    tiny_runtime: LocalRuntime,  # noqa: F811
) -> None:
    rec = Reconciler(repo_project, runtime=tiny_runtime, retry_backoff_s=60)
    port = free_port()
    commit_doc("churn.yaml", doc("churn", port, version=1))
    assert rec.sync().outcome("churn").action == "synced"
    commit_doc("churn.yaml", doc("churn", port, version=2))
    outcome = rec.sync().outcome("churn")
    assert outcome.action == "failed"
    assert outcome.health == HealthStatus.DEGRADED
    assert f"model 'churn' version 2 cannot be deployed: {SCAN_FAILED}" in outcome.reason
    live = tiny_runtime.live_state()["churn"]
    assert live.spec.version == 1 and live.running == 1  # what ran keeps running
    failed = repo_project.store.deployments.history("churn")[0]
    assert failed.result == "Failed" and "its model scan failed" in failed.details["error"]
    refusal = _refusals(churn)[-1]
    assert refusal["object"] == "churn/2" and refusal["where"] == "deploy"


def test_the_model_server_will_not_load_it(churn: Project) -> None:
    with pytest.raises(SecurityError, match=f"version 2 cannot be loaded: {SCAN_FAILED}"):
        load_model("models:/churn/2")
    assert load_model("models:/churn@champion").version == "1"
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "serve", "models:/churn/2", "--port", str(free_port())],
        cwd=churn.dir,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "model 'churn' version 2 cannot be loaded: its model scan failed" in _flat(out)
    assert [r["where"] for r in _refusals(churn)] == ["load", "load"]


def test_the_policy_comes_from_opsloop_yaml(churn: Project) -> None:
    (churn.dir / "opsloop.yaml").write_text(
        "project: demo\nsecurity:\n  require_scan: any\n  max_severity: critical\n"
    )
    relaxed = open_project(churn.dir)
    try:
        policy = admission_policy(relaxed)
    finally:
        relaxed.close()
    assert policy.require_scan == "any" and policy.max_severity == "critical"
    assert policy.require_signature and policy.require_gates


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    return {**env, "COLUMNS": "400"}


def _flat(out: subprocess.CompletedProcess[str]) -> str:
    return " ".join((out.stdout + out.stderr).split())
