"""The reconciler against a real Git repository, a real store and real server processes (the
tiny stand-in server): sync, statuses, bad input kept contained, self-heal, prune, history."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.context import Project
from opsloop.errors import GitOpsError
from opsloop.gitops import (
    HealthStatus,
    Reconciler,
    SyncStatus,
)
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.store import models as m
from tests.gitops.conftest import doc, kill
from tests.ports import free_port

AUTO = "  syncPolicy: {automated: true, selfHeal: true, prune: true}\n"
MANUAL_ONLY = "  syncPolicy: {automated: false}\n"


@pytest.fixture
def rec(repo_project: Project, models: list[int], tiny_runtime: LocalRuntime) -> Reconciler:
    return Reconciler(repo_project, runtime=tiny_runtime, retry_backoff_s=60)


def _pid(runtime: LocalRuntime, name: str) -> int:
    return runtime._read().deployments[name].replicas[0].pid


def _events(project: Project, kind: str) -> list[m.Event]:
    with project.store.db.read() as s:
        return list(s.scalars(select(m.Event).where(m.Event.kind == kind)))


def test_sync_starts_deployments_and_records_them(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port(), extra=AUTO))
    head = commit_doc("b.yaml", doc("b", free_port(), version=2))
    result = rec.sync()
    assert result.ok and result.revision == head
    for name in ("a", "b"):
        o = result.outcome(name)
        assert (o.sync, o.health, o.action) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, "synced")
        assert o.diff == {"deployment": {"live": None, "desired": "running"}}
        assert "1/1 replica ready" in o.reason
    record = rec.store.deployments.get("b")
    assert record is not None
    assert (record.sync_status, record.health_status, record.revision) == (
        "Synced",
        "Healthy",
        head,
    )
    assert record.desired["file"] == "deploy/b.yaml" and record.desired["spec"]["version"] == 2
    assert record.live["running"] == 1
    [entry] = rec.store.deployments.history("b")
    assert (entry.result, entry.revision, entry.details["trigger"]) == ("Succeeded", head, "manual")
    assert len(_events(rec.project, "deployment.synced")) == 2
    # A second pass has nothing to do.
    again = rec.sync()
    assert [o.action for o in again.outcomes] == ["none", "none"]
    assert len(rec.store.deployments.history("b")) == 1


def test_an_invalid_document_degrades_only_its_deployment(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    port_a = free_port()
    commit_doc("a.yaml", doc("a", port_a))
    commit_doc("b.yaml", doc("b", free_port()))
    rec.sync()
    pid_a = _pid(tiny_runtime, "a")
    # a breaks; a new document c also comes in; b changes version.
    commit_doc("a.yaml", doc("a", port_a).replace("version: 1", "version: one"))
    commit_doc("c.yaml", doc("c", free_port()))
    commit_doc("b.yaml", doc("b", tiny_runtime.live_state()["b"].spec.port, version=3))
    result = rec.sync(prune=True)
    a = result.outcome("a")
    assert (a.sync, a.health, a.action) == (SyncStatus.UNKNOWN, HealthStatus.DEGRADED, "invalid")
    assert "deploy/a.yaml:7: field 'spec.version'" in a.reason
    assert "left as it is" in a.reason
    assert _pid(tiny_runtime, "a") == pid_a  # untouched, and not pruned
    assert tiny_runtime.live_state()["a"].spec.version == 1
    assert result.outcome("b").action == "synced"
    assert tiny_runtime.live_state()["b"].spec.version == 3
    assert result.outcome("c").health == HealthStatus.HEALTHY
    assert not result.ok
    record = rec.store.deployments.get("a")
    assert record is not None and record.health_status == "Degraded"
    assert record.reason.startswith("invalid document: deploy/a.yaml:7")


def test_an_unreadable_document_never_prunes_its_deployment(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port(), extra=AUTO))
    rec.sync()
    commit_doc("a.yaml", "metadata: [broken\n")
    result = rec.sync()
    a = result.outcome("a")
    assert a.action == "invalid" and "invalid YAML" in a.reason
    assert "a" in tiny_runtime.live_state()
    assert result.problems[0].file == "deploy/a.yaml"


def test_an_unknown_version_degrades_only_its_deployment(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port(), version=9))
    commit_doc("b.yaml", doc("b", free_port()))
    result = rec.sync()
    a = result.outcome("a")
    assert (a.sync, a.health) == (SyncStatus.UNKNOWN, HealthStatus.DEGRADED)
    assert "deploy/a.yaml: spec.version: model 'churn' has no version 9" in a.reason
    assert "a" not in tiny_runtime.live_state()
    assert result.outcome("b").health == HealthStatus.HEALTHY


def test_a_port_in_use_degrades_only_its_deployment(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        commit_doc("a.yaml", doc("a", taken))
        commit_doc("b.yaml", doc("b", free_port()))
        result = rec.sync()
    a = result.outcome("a")
    assert (a.sync, a.health, a.action) == (
        SyncStatus.OUT_OF_SYNC,
        HealthStatus.DEGRADED,
        "failed",
    )
    assert f"port {taken} on 127.0.0.1 is in use by another process" in a.reason
    assert result.outcome("b").health == HealthStatus.HEALTHY
    [failed] = rec.store.deployments.history("a")
    assert failed.result == "Failed" and "in use" in failed.details["error"]
    assert len(_events(rec.project, "deployment.sync_failed")) == 1


def test_dry_run_changes_nothing(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port()))
    result = rec.sync(dry_run=True)
    a = result.outcome("a")
    assert (a.sync, a.action) == (SyncStatus.OUT_OF_SYNC, "would-sync")
    assert tiny_runtime.live_state() == {}
    assert rec.store.deployments.list() == []
    assert rec.store.deployments.history("a") == []


def test_status_refreshes_without_applying(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port()))
    result = rec.status()
    a = result.outcome("a")
    assert (a.sync, a.health) == (SyncStatus.OUT_OF_SYNC, HealthStatus.MISSING)
    assert "run 'opsloop sync' to apply" in a.reason
    assert tiny_runtime.live_state() == {}
    record = rec.store.deployments.get("a")
    assert record is not None and record.sync_status == "OutOfSync"


def test_automated_sync_self_heal_and_their_switches(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("auto.yaml", doc("auto", free_port(), extra=AUTO))
    commit_doc("manual.yaml", doc("manual", free_port(), extra=MANUAL_ONLY))
    no_heal = "  syncPolicy: {automated: true, selfHeal: false}\n"
    commit_doc("noheal.yaml", doc("noheal", free_port(), extra=no_heal))
    first = rec.sync(mode="auto")
    assert first.outcome("auto").action == "synced"
    assert first.outcome("noheal").action == "synced"
    manual = first.outcome("manual")
    assert manual.action == "skipped" and "automated sync is off" in manual.reason
    assert "manual" not in tiny_runtime.live_state()

    old_auto, old_noheal = _pid(tiny_runtime, "auto"), _pid(tiny_runtime, "noheal")
    kill(old_auto)
    kill(old_noheal)
    second = rec.sync(mode="auto")
    healed = second.outcome("auto")
    assert healed.action == "healed" and healed.health == HealthStatus.HEALTHY
    assert healed.diff == {"running": {"live": 0, "desired": 1}}
    assert _pid(tiny_runtime, "auto") != old_auto
    left = second.outcome("noheal")
    assert (left.sync, left.health, left.action) == (
        SyncStatus.OUT_OF_SYNC,
        HealthStatus.DEGRADED,
        "skipped",
    )
    assert "self-heal is off" in left.reason
    assert rec.store.deployments.history("auto")[0].details["trigger"] == "self-heal"
    assert len(_events(rec.project, "deployment.healed")) == 1


def test_a_failed_automated_sync_waits_for_its_backoff(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        commit_doc("a.yaml", doc("a", busy.getsockname()[1], extra=AUTO))
        assert rec.sync(mode="auto").outcome("a").action == "failed"
        again = rec.sync(mode="auto").outcome("a")
    assert again.action == "skipped" and "retrying in" in again.reason
    assert len(rec.store.deployments.history("a")) == 1


def test_prune_follows_the_policy_or_the_flag(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("keep.yaml", doc("keep", free_port()))
    commit_doc("gone.yaml", doc("gone", free_port(), extra=AUTO))
    rec.sync()
    commit_doc("keep.yaml", None)
    head = commit_doc("gone.yaml", None)
    result = rec.sync(mode="auto")
    gone = result.outcome("gone")
    assert (gone.action, gone.sync, gone.health) == (
        "pruned",
        SyncStatus.SYNCED,
        HealthStatus.MISSING,
    )
    assert "gone" not in tiny_runtime.live_state()
    assert rec.store.deployments.get("gone") is None
    assert rec.store.deployments.history("gone")[0].result == "Pruned"
    keep = result.outcome("keep")
    assert (keep.action, keep.sync) == ("skipped", SyncStatus.OUT_OF_SYNC)
    assert f"not in deploy/ at {head[:10]} but running (prune is off" in keep.reason
    assert rec.sync(dry_run=True, prune=True).outcome("keep").action == "would-prune"
    assert "keep" in tiny_runtime.live_state()
    assert rec.sync(["keep"], prune=True).outcome("keep").action == "pruned"
    assert tiny_runtime.live_state() == {}
    assert len(_events(rec.project, "deployment.pruned")) == 2


def test_names_select_deployments(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port()))
    commit_doc("b.yaml", doc("b", free_port()))
    result = rec.sync(["b"])
    assert [o.name for o in result.outcomes] == ["b"]
    assert set(tiny_runtime.live_state()) == {"b"}
    with pytest.raises(GitOpsError, match="no deployment named 'zzz'"):
        rec.sync(["zzz"])


def test_working_tree_and_older_revisions(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    port = free_port()
    first = commit_doc("a.yaml", doc("a", port, version=1))
    commit_doc("a.yaml", doc("a", port, version=2))
    rec.sync(revision=first)
    assert tiny_runtime.live_state()["a"].spec.version == 1
    (rec.repo.root / "deploy" / "a.yaml").write_text(doc("a", port, version=3))
    result = rec.sync(revision=None)
    assert result.revision == "working-tree"
    assert tiny_runtime.live_state()["a"].spec.version == 3


def test_run_forever_reports_every_pass(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    commit_doc("a.yaml", doc("a", free_port(), extra=AUTO))
    seen: list[str] = []
    stop = threading.Event()
    rec.run_forever(
        0.01, stop=stop, on_pass=lambda r: seen.append(r.outcome("a").action), max_passes=2
    )
    assert seen == ["synced", "none"]


def test_a_version_a_sync_rolled_out_is_blamed_for_the_trouble_that_follows(
    rec: Reconciler, commit_doc: Callable[..., str], tiny_runtime: LocalRuntime
) -> None:
    port = free_port()
    commit_doc("b.yaml", doc("b", port, version=2))
    rec.sync()
    commit_doc("b.yaml", doc("b", port, version=3))
    assert rec.sync().outcome("b").action == "synced"
    # Minutes after version 3 went live, the deployment slows down and fails requests.
    now = datetime.now(UTC)
    alerts = [
        AlertIn(name=name, labels={"deployment": "b"}, starts_at=now + timedelta(minutes=k))
        for k, name in ((1, "HighRequestLatency"), (2, "HighErrorRate"))
    ]
    store = rec.store
    got = ingest_alerts(store, alerts, lineage_from_store(store), now=now + timedelta(minutes=3))
    incident = store.incidents.get(got.opened[0])
    assert incident.root_cause == "model:churn/3"
    assert incident.root_causes[0]["reason"].startswith("rolled out to b ")
