"""GitOps end to end with real model servers (``opsloop serve`` processes on 127.0.0.1):
promote → sync → predict → canary in Git → sync → kill → self-heal → rollback → prune."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project
from opsloop.gitops import (
    HealthStatus,
    Reconciler,
    SyncStatus,
    parse_document,
    promote,
    rollback,
    set_traffic,
)
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.registry import register_model
from tests.gitops.conftest import git

pytestmark = pytest.mark.slow

ROWS = {"tenure": [1.0, 30.0], "charges": [80.0, 20.0]}


@pytest.fixture
def runtime(project: Project) -> Iterator[LocalRuntime]:
    """The local runtime running the real ``opsloop serve``; every server stops at the end."""
    runtime = LocalRuntime(project.dir, ready_timeout_s=90, stop_timeout_s=10)
    try:
        yield runtime
    finally:
        runtime.stop_all()


def _v2(inputs: dict[str, list[float]]) -> dict[str, object]:
    return {
        "inputs": [
            {"name": k, "shape": [len(v)], "datatype": "FP64", "data": v} for k, v in inputs.items()
        ]
    }


def _pid(runtime: LocalRuntime, name: str) -> int:
    return runtime._read().deployments[name].replicas[0].pid


def test_gitops_flow(project: Project, runtime: LocalRuntime) -> None:
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git_init = ["init", "-q", "-b", "main"]
    git(project.dir, *git_init)
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")

    rng = np.random.default_rng(11)
    x = pd.DataFrame({"tenure": rng.uniform(0, 60, 200), "charges": rng.uniform(10, 120, 200)})
    y = ((x["charges"] / 40 - x["tenure"] / 20 + rng.normal(0, 0.5, 200)) > 0).astype(int)
    for c in (0.1, 1.0, 10.0):
        register_model("churn", LogisticRegression(C=c).fit(x, y), input_example=x.head(5))
    project.store.models.set_alias("churn", "champion", 1)

    # Promote: the alias is resolved now and the version written into Git.
    promoted = promote("churn", to="churn-prod", alias="champion", project=project)
    assert promoted.version == 1 and promoted.commit is not None
    port = parse_document(git(project.dir, "show", f"HEAD:{promoted.file}"), "d").spec.port
    base = f"http://127.0.0.1:{port}"

    rec = Reconciler(project, runtime=runtime)
    result = rec.sync()
    o = result.outcome("churn-prod")
    assert (o.sync, o.health, o.action) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, "synced"), (
        o.reason
    )
    assert o.endpoints == [base]

    with httpx.Client(base_url=base, timeout=30) as http:
        v2 = http.post("/v2/models/churn/infer", json=_v2(ROWS))
        assert v2.status_code == 200, v2.text
        body = v2.json()
        assert body["model_name"] == "churn" and body["model_version"] == "1"
        # A classifier answers its classes; its probabilities when asked (as MLServer).
        assert [o["name"] for o in body["outputs"]] == ["predict"]
        assert np.asarray(body["outputs"][0]["data"]).size == 2
        proba = http.post(
            "/v2/models/churn/infer", json={**_v2(ROWS), "outputs": [{"name": "predict_proba"}]}
        ).json()["outputs"][0]
        assert proba["name"] == "predict_proba" and proba["shape"] == [2, 2]
        inv = http.post(
            "/invocations",
            json={"dataframe_split": {"columns": list(ROWS), "data": [[1.0, 80.0], [30.0, 20.0]]}},
        )
        assert inv.status_code == 200, inv.text
        assert len(inv.json()["predictions"]) == 2
        metrics = http.get("/metrics").text
        assert "opsloop_requests" in metrics and 'model="churn"' in metrics
        first_pid = _pid(runtime, "churn-prod")

        # A canary in Git, applied without restarting the server.
        set_traffic("churn-prod", {1: 80, 2: 20}, project=project)
        o = rec.sync().outcome("churn-prod")
        assert o.action == "synced" and o.health == HealthStatus.HEALTHY, o.reason
        assert o.diff["traffic"] == {"live": {"1": 100.0}, "desired": {"1": 80.0, "2": 20.0}}
        table = http.get("/v1/admin/models").json()["models"]["churn"]
        assert sorted(table["versions"]) == ["1", "2"]
        assert {k: float(v) for k, v in table["traffic"].items()} == {"1": 80.0, "2": 20.0}
        assert _pid(runtime, "churn-prod") == first_pid
        canary = http.post("/v2/models/churn/versions/2/infer", json=_v2(ROWS))
        assert canary.status_code == 200 and canary.json()["model_version"] == "2"

        # A routing table changed by hand is drift: self-heal puts Git's split back in place.
        hand = http.post(
            "/v1/admin/models",
            json={"action": "set_traffic", "model": "churn", "traffic": {"1": 100, "2": 0}},
        )
        assert hand.status_code == 200, hand.text
        o = rec.sync(mode="auto").outcome("churn-prod")
        assert o.action == "healed" and "routing[0]" in o.diff, o.reason
        table = http.get("/v1/admin/models").json()["models"]["churn"]
        assert {k: float(v) for k, v in table["traffic"].items()} == {"1": 80.0, "2": 20.0}
        assert _pid(runtime, "churn-prod") == first_pid

        # A server killed by hand is brought back by self-heal.
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while LocalRuntime.alive(runtime._read().deployments["churn-prod"].replicas[0]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert rec.status().outcome("churn-prod").health == HealthStatus.DEGRADED
        o = rec.sync(mode="auto").outcome("churn-prod")
        assert (o.action, o.health) == ("healed", HealthStatus.HEALTHY), o.reason
        assert _pid(runtime, "churn-prod") != first_pid
        assert http.post("/v2/models/churn/infer", json=_v2(ROWS)).status_code == 200

        # Roll back the canary (a revert commit); the reconciler applies it.
        rolled = rollback("churn-prod", project=project)
        assert git(project.dir, "log", "-1", "--format=%s") == rolled.message
        o = rec.sync(mode="auto").outcome("churn-prod")
        assert o.action == "synced" and o.health == HealthStatus.HEALTHY, o.reason
        table = http.get("/v1/admin/models").json()["models"]["churn"]
        assert table["versions"] == ["1"]

    history = project.store.deployments.history("churn-prod")
    triggers = [h.details["trigger"] for h in history]
    assert triggers == ["automated", "self-heal", "self-heal", "manual", "manual"]
    assert all(h.result == "Succeeded" for h in history)

    # Prune: the document leaves Git, the server stops.
    [replica] = runtime._read().deployments["churn-prod"].replicas
    git(project.dir, "rm", "-q", promoted.file)
    git(project.dir, "commit", "-q", "-m", "retire churn-prod")
    o = rec.sync(mode="auto").outcome("churn-prod")
    assert o.action == "pruned" and o.health == HealthStatus.MISSING
    assert not LocalRuntime.alive(replica)
    assert runtime.live_state() == {}
    assert runtime.port_free(port)
