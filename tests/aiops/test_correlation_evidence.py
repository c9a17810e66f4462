"""Evidence-based grouping and ranking, merging and flaps in the store, on hard scenarios."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsloop.aiops.alerts import AlertIn, list_alerts
from opsloop.aiops.correlation import Change, correlate, neighbourhood
from opsloop.aiops.incidents import _rollouts, get_incident, ingest_alerts, list_incidents
from opsloop.aiops.lineage import LineageGraph
from opsloop.store import Store, open_store
from opsloop.testing.aiops_hard import (
    Level,
    generate,
    indistinguishable_bound,
    pairwise_counts,
    root_hits,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D1 = "sha256:" + "c3" * 32


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def alert(
    name: str,
    minute: float,
    seen: float | None = None,
    status: str = "firing",
    **labels: str,
) -> AlertIn:
    end = at(seen if seen is not None else minute)
    return AlertIn(
        name=name,
        labels=labels,
        status=status,
        starts_at=at(minute),
        last_seen_at=end,
        ends_at=end if status == "resolved" else None,
    )


def estate(deployments: int = 2, hosts: int = 1) -> LineageGraph:
    """One dataset (columns a, b, c) training model m/1 and m/2; ``deployments`` deployments
    serving m/2 (dep0 also m/1, a canary) spread over ``hosts`` hosts."""
    edges: list[tuple[str, str]] = []
    for col in ("a", "b", "c"):
        edges.append((f"dataset:{D1}", f"feature:{col}@{D1}"))
        for v in (1, 2):
            edges.append((f"feature:{col}@{D1}", f"model:m/{v}"))
    edges.append(("model:m/1", "deployment:dep0"))
    for d in range(deployments):
        edges.append(("model:m/2", f"deployment:dep{d}"))
        edges.append((f"host:h{d % hosts}", f"deployment:dep{d}"))
    return LineageGraph(edges)


def test_a_deployments_own_config_alert_beats_blaming_its_model() -> None:
    g = estate()
    alerts = [
        alert("deployment_replica_mismatch", 0, deployment="dep1"),
        alert("latency_p99_high", 1, deployment="dep1"),
        alert("error_rate_high", 2, deployment="dep1"),
        alert("model_accuracy_drop", 25, deployment="dep1", model="m", version="2"),
    ]
    (draft,) = correlate(alerts, g)
    top = draft.summary.root_causes[0]
    assert top.node == "deployment:dep1" and not top.inferred
    assert draft.summary.root_causes[0].score > draft.summary.root_causes[1].score


def test_a_noise_blip_upstream_does_not_displace_a_bad_model() -> None:
    g = estate()
    alerts = [alert("feature_drift", 0, 10, feature="b", deployment="dep1")]
    alerts += [
        alert(name, 5 + k, deployment=f"dep{k % 2}", model="m", version="2")
        for k, name in enumerate(["prediction_drift", "model_accuracy_drop"] * 5)
    ]
    drafts = correlate(alerts, g)
    main = max(drafts, key=lambda d: len(d.alert_indices))
    assert main.summary.root_causes[0].node == "model:m/2"
    assert len(main.alert_indices) == 10


def test_no_chaining_through_nodes_that_never_alerted() -> None:
    """A storm of latency alerts on 40 deployments of 20 hosts, all through one model: each
    host with two slow deployments is its own incident, not one incident for everything."""
    edges = []
    for d in range(40):
        edges += [("model:m/1", f"deployment:d{d}"), (f"host:h{d // 2}", f"deployment:d{d}")]
    g = LineageGraph(edges)
    alerts = [alert("latency_p99_high", d * 0.2, deployment=f"d{d}") for d in range(40)]
    drafts = correlate(alerts, g)
    assert len(drafts) == 20
    assert {d.summary.root_causes[0].node for d in drafts} == {f"host:h{h}" for h in range(20)}


def _tenants() -> LineageGraph:
    """Three deployments of three models sharing host h0; dep2 also runs on h1."""
    edges = [("host:h1", "deployment:dep2")]
    for d in range(3):
        edges += [(f"model:m{d}/1", f"deployment:dep{d}"), ("host:h0", f"deployment:dep{d}")]
    return LineageGraph(edges)


def _surge(throttled: float, at_limit: float, host: float, neighbours: float) -> list[AlertIn]:
    """dep0's traffic surges: it slows down at minute 0, its CPU is throttled and its
    autoscaler reaches its limit, its host's CPU runs hot, and its two neighbours there slow
    down (the second three minutes after the first), at the minutes given."""
    return [
        alert("HighRequestLatency", 0, 30, deployment="dep0"),
        alert("CPUThrottlingHigh", throttled, 30, deployment="dep0"),
        alert("KubeHpaMaxedOut", at_limit, 30, deployment="dep0"),
        alert("NodeCPUHighUsage", host, 30, host="h0"),
        alert("HighRequestLatency", neighbours, 30, deployment="dep1"),
        alert("HighRequestLatency", neighbours + 3, 30, deployment="dep2"),
    ]


def test_a_surge_on_one_deployment_is_blamed_on_it_not_on_the_host_it_shares() -> None:
    # It slows down and saturates first, then its host's CPU runs hot and its neighbours
    # there slow down.
    alerts = _surge(throttled=2, at_limit=4, host=6, neighbours=8)
    (draft,) = correlate(alerts, _tenants())
    assert draft.summary.root_causes[0].node == "deployment:dep0"
    # Without the host's alert its neighbours' latency still follows it.
    (draft,) = correlate([a for a in alerts if a.name != "NodeCPUHighUsage"], _tenants())
    assert draft.summary.root_causes[0].node == "deployment:dep0"


def _rollout(canary_versions: tuple[str, ...] = ("m/2",)) -> LineageGraph:
    """Model m: version 1 serves ``stable``; ``canary`` serves ``canary_versions`` (a canary
    of its own, or a split of traffic between versions); both on host h0."""
    edges = [("model:m/1", "deployment:stable"), ("host:h0", "deployment:stable")]
    edges += [(f"model:{v}", "deployment:canary") for v in canary_versions]
    edges.append(("host:h0", "deployment:canary"))
    return LineageGraph(edges)


def _canary_symptoms(verdict: str | None = "CanaryAnalysisFailed") -> list[AlertIn]:
    # The canary's errors and latency come first, the controller's verdict minutes later.
    alerts = [
        alert("HighErrorRate", 0, 20, deployment="canary", model="m", version="2"),
        alert("HighRequestLatency", 2, 20, deployment="canary", model="m", version="2"),
    ]
    if verdict is not None:
        alerts.append(alert(verdict, 5, 20, deployment="canary", rollout="canary"))
    return alerts


def test_a_failed_canary_analysis_blames_the_version_rolled_out() -> None:
    (draft,) = correlate(_canary_symptoms(), _rollout())
    top = draft.summary.root_causes[0]
    assert top.node == "model:m/2" and not top.inferred
    assert "canary analysis" in top.reason
    # The canary's own symptoms alone point at the canary itself: the verdict is what moves
    # the blame to the version.
    (draft,) = correlate(_canary_symptoms(None), _rollout())
    assert draft.summary.root_causes[0].node == "deployment:canary"
    # A rollout that is stuck is what a bad config does too: no verdict on the version.
    (draft,) = correlate(_canary_symptoms("KubeDeploymentRolloutStuck"), _rollout())
    assert draft.summary.root_causes[0].node == "deployment:canary"


def test_a_canary_splitting_traffic_blames_its_newest_version() -> None:
    # The canary serves the stable version and the new one; versions compare as numbers.
    (draft,) = correlate(_canary_symptoms(), _rollout(("m/1", "m/9", "m/10")))
    assert draft.summary.root_causes[0].node == "model:m/10"
    ranked = [rc.node for rc in draft.summary.root_causes]
    assert ranked.count("model:m/10") == 1 and "deployment:canary" in ranked
    # Analysis runs and aborted rollouts say the same; a synthetic "canary" probe does not.
    for name in ("AnalysisRunFailed", "RolloutAborted"):
        (draft,) = correlate(_canary_symptoms(name), _rollout())
        assert draft.summary.root_causes[0].node == "model:m/2", name
    probe = [*_canary_symptoms(None), alert("BlackboxCanaryFailed", 5, 20, deployment="canary")]
    (draft,) = correlate(probe, _rollout())
    assert draft.summary.root_causes[0].node == "deployment:canary"


def test_a_deployment_at_its_autoscaling_limit_is_the_load_not_the_hosts_victim() -> None:
    # The host's CPU runs hot almost as soon as the surge shows: timing alone cannot tell
    # them apart, and the host, upstream of every tenant, would explain more.
    alerts = _surge(throttled=3, at_limit=3, host=2.5, neighbours=8)
    (draft,) = correlate(alerts, _tenants())
    assert draft.summary.root_causes[0].node == "deployment:dep0"
    # Without the autoscaler's word, the host is blamed.
    (draft,) = correlate([a for a in alerts if a.name != "KubeHpaMaxedOut"], _tenants())
    assert draft.summary.root_causes[0].node == "host:h0"


def _spec_symptoms(*names: str, host_alert: str = "NodeNetworkReceiveErrs") -> list[AlertIn]:
    # A deployment's own trouble, with an unrelated alert of its host at the same time.
    alerts = [alert(name, k, 30, deployment="dep0") for k, name in enumerate(names)]
    return [*alerts, alert(host_alert, 1.5, 30, host="h0")]


def test_a_stuck_rollout_is_the_deployments_own_not_its_hosts() -> None:
    spec = _spec_symptoms(
        "KubeContainerWaiting", "KubeDeploymentRolloutStuck", "KubePodCrashLooping"
    )
    (draft,) = correlate(spec, _tenants())
    assert draft.summary.root_causes[0].node == "deployment:dep0"
    # Pods that are not ready or crash are what a bad host does too: the host is blamed.
    host = _spec_symptoms(
        "KubePodNotReady", "KubeDeploymentReplicasMismatch", "KubePodCrashLooping"
    )
    (draft,) = correlate(host, _tenants())
    assert draft.summary.root_causes[0].node == "host:h0"


def test_a_container_killed_for_memory_hit_its_own_limit_unless_its_host_ran_short() -> None:
    names = ("HighErrorRate", "ModelServerOOMKilled", "KubePodCrashLooping")
    (draft,) = correlate(_spec_symptoms(*names, host_alert="NodeCPUHighUsage"), _tenants())
    assert draft.summary.root_causes[0].node == "deployment:dep0"
    (draft,) = correlate(_spec_symptoms(*names, host_alert="NodeMemoryPressure"), _tenants())
    assert draft.summary.root_causes[0].node == "host:h0"


def _rolled(minute: float, deployment: str = "dep1") -> Change:
    return Change(node="model:m/2", deployment=deployment, at=at(minute))


def test_a_version_rolled_out_just_before_a_deployments_trouble_is_ranked_first() -> None:
    g = estate()
    alerts = [
        alert("HighRequestLatency", 0, 20, deployment="dep1"),
        alert("HighErrorRate", 2, 20, deployment="dep1"),
    ]
    (draft,) = correlate(alerts, g, changes=[_rolled(-4)])
    top = draft.summary.root_causes[0]
    assert top.node == "model:m/2"
    assert top.reason == (
        "rolled out to dep1 4 min 0 s before its first alert; 2 of the 2 alerts follow on that "
        "deployment"
    )
    # Without the rollout, and with one that came after the trouble began, or long before it,
    # or on another deployment, the deployment's own alerts blame it.
    for changes in ([], [_rolled(1)], [_rolled(-30)], [_rolled(-4, "dep0")]):
        (draft,) = correlate(alerts, g, changes=changes)
        assert draft.summary.root_causes[0].node == "deployment:dep1", changes


def test_a_rollout_does_not_take_the_blame_for_its_hosts_trouble() -> None:
    # Three tenants of one host slow down; one of them had just been rolled out.
    alerts = [alert("HighRequestLatency", k, 20, deployment=f"dep{k}") for k in range(3)]
    (draft,) = correlate(alerts, estate(deployments=3), changes=[_rolled(-2)])
    assert draft.summary.root_causes[0].node == "host:h0"


def test_the_versions_a_sync_put_live() -> None:
    g = estate()
    t = at(0)

    def sync(before: dict[str, Any], after: dict[str, Any], **details: Any) -> Any:
        return ("dep0", t, {"result": "Succeeded", "before": before, "after": after, **details})

    syncs = [
        # A new main version, named by the event's model.
        sync({"version": 1}, {"version": 2}, model="m", version=2),
        # Traffic given to a version that had none; the model read from lineage.
        sync({"traffic": {"1": 100.0}}, {"traffic": {"1": 90.0, "2": 10.0}}),
        # A new deployment: what it serves.
        sync({"deployment": None}, {"deployment": "running"}, model="m", version=1),
        # Replicas only, a failed sync, and traffic taken away: nothing went live.
        sync({"replicas": 1}, {"replicas": 2}, model="m", version=2),
        ("dep0", t, {"result": "Failed", "before": {"version": 1}, "after": {"version": 1}}),
        sync({"traffic": {"1": 90.0, "2": 10.0}}, {"traffic": {"1": 100.0, "2": 0.0}}),
    ]
    assert _rollouts(syncs, g) == [
        Change("model:m/2", "dep0", t),
        Change("model:m/2", "dep0", t),
        Change("model:m/1", "dep0", t),
    ]


def _two_hosts(host_alert: str) -> list[tuple[list[int], str]]:
    """depA runs on hosts hA and hB, depB on hB alone; hA raises ``host_alert`` as depA
    fails, and depB's config breaks at the same time: the groups and their first causes."""
    g = LineageGraph(
        [
            ("host:hA", "deployment:depA"),
            ("host:hB", "deployment:depA"),
            ("host:hB", "deployment:depB"),
        ]
    )
    alerts = [
        alert("HighErrorRate", 0, 20, deployment="depA"),
        alert(host_alert, 0.5, 20, host="hA"),
        alert("KubeContainerWaiting", 3, 20, deployment="depB"),
        alert("KubePodCrashLooping", 3, 20, deployment="depA"),
        alert("KubePodCrashLooping", 5, 20, deployment="depB"),
    ]
    drafts = correlate(alerts, g)
    return sorted((sorted(d.alert_indices), d.summary.root_causes[0].node) for d in drafts)


def test_a_failing_host_claims_its_tenants_trouble_from_their_silent_hosts() -> None:
    # hA, not ready, explains depA; hB, which raised nothing, would chain depA and depB.
    assert _two_hosts("KubeNodeNotReady") == [([0, 1, 3], "host:hA"), ([2, 4], "deployment:depB")]
    # A clock out of sync fails no tenant: hB is inferred under both deployments.
    assert _two_hosts("NodeClockNotSynchronising") == [([0, 2, 3, 4], "host:hB"), ([1], "host:hA")]


def test_a_host_whose_memory_runs_out_is_blamed_for_its_tenants() -> None:
    alerts = [
        alert("NodeMemoryPressure", 0, 30, host="h0"),
        alert("HighRequestLatency", 1, 30, deployment="dep0"),
        alert("KubePodCrashLooping", 2, 30, deployment="dep0"),
        alert("HighErrorRate", 2, 30, deployment="dep1"),
    ]
    (draft,) = correlate(alerts, _tenants())
    assert draft.summary.root_causes[0].node == "host:h0"
    # Two tenants slowing down together, the host silent: the host.
    both = [alert("HighRequestLatency", 0, 30, deployment=d) for d in ("dep0", "dep1")]
    (draft,) = correlate(both, _tenants())
    assert draft.summary.root_causes[0].node == "host:h0"


def test_a_silent_dataset_is_blamed_only_with_evidence_below_it() -> None:
    g = estate()
    drift = [alert("feature_drift", k, feature=c, deployment="dep1") for k, c in enumerate("abc")]
    (draft,) = correlate(drift, g)
    top = draft.summary.root_causes[0]
    assert top.node == f"dataset:{D1}" and top.inferred
    # One drifting column alone is about that column: its silent dataset is not blamed.
    (single,) = correlate(drift[:1], g)
    assert single.summary.root_causes[0].node == f"feature:a@{D1}"


def test_flaps_stay_one_group_and_late_alerts_do_not_join() -> None:
    g = estate()
    alerts = [
        alert("latency_p99_high", 0, 5, status="resolved", deployment="dep1"),
        alert("latency_p99_high", 9, 12, deployment="dep1"),  # flap: 4 minutes after the end
        alert("error_rate_high", 80, deployment="dep1"),  # an hour later: news
    ]
    groups = sorted(sorted(d.alert_indices) for d in correlate(alerts, g))
    assert groups == [[0, 1], [2]]


def test_an_alert_firing_again_after_a_quiet_spell_is_no_new_evidence() -> None:
    g = estate()
    again = [
        alert("deployment_replica_mismatch", 0, 2, status="resolved", deployment="dep1"),
        # Quiet for 31 minutes (longer than a flap): the same alert again is not corroboration.
        alert("deployment_replica_mismatch", 33, 34, deployment="dep1"),
    ]
    assert sorted(sorted(d.alert_indices) for d in correlate(again, g)) == [[0], [1]]
    # With another alert on the deployment there is evidence, and the repeat joins it (the
    # first firing, 18 minutes before it, is past the window).
    groups = [
        d.alert_indices
        for d in correlate([*again, alert("latency_p99_high", 20, 40, deployment="dep1")], g)
    ]
    assert sorted(sorted(x) for x in groups) == [[0], [1, 2]]


def test_an_alert_flapping_all_day_is_one_episode() -> None:
    g = estate()
    # Up for 2-8 minutes, down for 5-25, for three hours: one problem, not eight.
    flaps, t = [], 0
    for up, down in [(3, 20), (8, 25), (2, 5), (6, 24), (4, 18), (5, 22), (7, 12), (3, 9)]:
        flaps.append(alert("cpu_throttling", t, t + up, status="resolved", deployment="dep1"))
        t += up + down
    assert [sorted(d.alert_indices) for d in correlate(flaps, g)] == [list(range(8))]
    # Quiet for longer than a flap, it is news again.
    later = alert("cpu_throttling", t + 31, deployment="dep1")
    groups = sorted(sorted(d.alert_indices) for d in correlate([*flaps, later], g))
    assert groups == [list(range(8)), [8]]


def test_a_late_effect_needs_an_earlier_symptom_on_its_path() -> None:
    g = estate(deployments=3)
    drift = [
        alert("feature_drift", k, 30, feature=c, deployment="dep1") for k, c in enumerate("abc")
    ]
    # An hour later (labels arrive late) accuracy drops where the drift was seen: one incident.
    there = alert("model_accuracy_drop", 60, deployment="dep1", model="m", version="2")
    assert [sorted(d.alert_indices) for d in correlate([*drift, there], g)] == [[0, 1, 2, 3]]
    # On a deployment that showed nothing of the drift, the late drop is news.
    elsewhere = alert("model_accuracy_drop", 60, deployment="dep2", model="m", version="2")
    groups = sorted(sorted(d.alert_indices) for d in correlate([*drift, elsewhere], g))
    assert groups == [[0, 1, 2], [3]]


def test_a_late_effect_follows_the_alert_of_a_feature_it_reads() -> None:
    g = estate(deployments=3)
    # A broken feature raises its own alert (a data job's, tied to no deployment); the drift
    # of the predictions of a model reading it shows 25 minutes later, past the window.
    broken = alert("feature_value_out_of_range", 0, 40, feature="a")
    drift = alert("prediction_drift", 25, deployment="dep2", model="m", version="2")
    groups = [sorted(d.alert_indices) for d in correlate([broken, drift], g)]
    assert groups == [[0, 1]]
    # A model that does not read the feature (a lone deployment's own model) shows news.
    lone = estate(deployments=3)
    lone.add_edge("model:other/1", "deployment:dep9")
    other = alert("prediction_drift", 25, deployment="dep9", model="other", version="1")
    groups = sorted(sorted(d.alert_indices) for d in correlate([broken, other], lone))
    assert groups == [[0], [1]]


def test_a_weak_link_is_no_evidence() -> None:
    g = estate()
    # A model rarely slows a deployment down: its accuracy drop and another deployment's
    # latency two minutes later are two incidents.
    alerts = [
        alert("model_accuracy_drop", 0, deployment="dep1", model="m", version="2"),
        alert("latency_p99_high", 2, deployment="dep0"),
    ]
    assert sorted(sorted(d.alert_indices) for d in correlate(alerts, g)) == [[0], [1]]


def test_a_group_times_its_effects_from_its_onset() -> None:
    g = estate()
    # A store passes an open incident's recent alerts only: here one from minute 100 of an
    # incident that opened at minute 0. A new alert ten minutes later is close to that alert
    # but 110 minutes after the incident began: it does not join.
    alerts = [
        alert("latency_p99_high", 100, 105, deployment="dep1"),
        alert("error_rate_high", 110, deployment="dep1"),
    ]
    groups = ["incident-1", None]
    assert len(correlate(alerts, g, groups=groups)) == 1
    assert len(correlate(alerts, g, groups=groups, onsets={"incident-1": at(0)})) == 2


def test_neighbourhood_is_bounded() -> None:
    g = estate(deployments=6, hosts=3)
    near = neighbourhood([alert("latency_p99_high", 0, deployment="dep1")], g)
    assert "host:h1" in near and "deployment:dep4" in near  # dep4 shares host h1
    assert "deployment:dep0" in near  # through model m/2 (a model can raise latency)
    assert f"dataset:{D1}" not in near  # a dataset cannot slow a deployment down


# -- the store -----------------------------------------------------------------------------------


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


def test_open_incidents_merge_when_evidence_links_them(store: Store) -> None:
    g = estate(deployments=3)
    # Lineage lags behind alerts: the hosts of the deployments are not known yet.
    early = LineageGraph([e for e in g.edges if not e[0].startswith("host:")])
    first = ingest_alerts(
        store, [alert("latency_p99_high", 0, 3, deployment="dep0")], early, now=at(3)
    )
    second = ingest_alerts(
        store, [alert("error_rate_high", 1, 3, deployment="dep2")], early, now=at(3)
    )
    (a,), (b,) = first.opened, second.opened
    assert a != b
    # A third deployment on the host slows down: the host explains all three.
    third = ingest_alerts(store, [alert("latency_p99_high", 2, 4, deployment="dep1")], g, now=at(4))
    assert third.updated == [a] and third.opened == []
    merged = get_incident(store, b)
    assert merged.status == "resolved" and merged.details["merged_into"] == a
    kept = get_incident(store, a)
    assert kept.status == "open" and kept.root_cause == "host:h0" and kept.alert_count == 3
    assert {x.incident_id for x in list_alerts(store)} == {a}
    (event,) = store.events.list(kind="incident.merged")
    assert event.object_id == str(b) and event.details["into"] == a


def test_a_failed_canary_analysis_blames_the_version_through_the_store(store: Store) -> None:
    g = _rollout()
    symptoms = _canary_symptoms()
    (inc,) = ingest_alerts(store, symptoms[:2], g, now=at(3)).opened
    assert get_incident(store, inc).root_cause == "deployment:canary"
    # The verdict arrives in a later delivery: the incident is ranked again, with an event.
    got = ingest_alerts(store, symptoms[2:], g, now=at(6))
    assert got.updated == [inc] and got.opened == []
    assert get_incident(store, inc).root_cause == "model:m/2"
    (event,) = store.events.list(kind="incident.updated")
    assert event.details["root_cause"] == {"from": "deployment:canary", "to": "model:m/2"}


def test_a_sync_that_put_a_version_live_is_evidence_through_the_store(store: Store) -> None:
    g = estate()
    # The reconciler records what it put live as it syncs; the alerts follow.
    store.deployments.record_sync(
        "dep1",
        revision="abc123",
        started_at=datetime.now(UTC),
        result="Succeeded",
        diff={"version": {"live": 1, "desired": 2}},
        details={"model": "m", "version": 2, "trigger": "manual"},
    )
    now = datetime.now(UTC)
    later = [
        AlertIn(name=name, labels={"deployment": "dep1"}, starts_at=now + timedelta(minutes=k))
        for k, name in ((1, "HighRequestLatency"), (2, "HighErrorRate"))
    ]
    (inc,) = ingest_alerts(store, later, g, now=now + timedelta(minutes=3)).opened
    got = get_incident(store, inc)
    assert got.root_cause == "model:m/2"
    assert got.root_causes[0]["reason"].startswith("rolled out to dep1 ")


def test_an_incident_stays_open_through_a_flap(store: Store) -> None:
    g = estate()
    (inc,) = ingest_alerts(
        store, [alert("latency_p99_high", 0, 5, deployment="dep1")], g, now=at(5)
    ).opened
    ended = ingest_alerts(
        store, [alert("latency_p99_high", 0, 6, status="resolved", deployment="dep1")], g, now=at(6)
    )
    assert ended.resolved == [] and get_incident(store, inc).status == "open"
    # It fires again 20 minutes later: the same incident, not a new one.
    again = ingest_alerts(
        store, [alert("latency_p99_high", 26, 27, deployment="dep1")], g, now=at(27)
    )
    assert again.opened == [] and again.updated == [inc]
    ingest_alerts(
        store,
        [alert("latency_p99_high", 26, 30, status="resolved", deployment="dep1")],
        g,
        now=at(30),
    )
    # Not yet quiet for the grace period (as long as a flap may be: 30 minutes): still open.
    early = ingest_alerts(store, [alert("cpu_high", 55, host="elsewhere")], g, now=at(55))
    assert early.resolved == [] and get_incident(store, inc).status == "open"
    # Quiet for the grace period: resolved, at the last end.
    later = ingest_alerts(store, [alert("cpu_high", 61, host="elsewhere")], g, now=at(61))
    assert later.resolved == [inc]
    assert get_incident(store, inc).resolved_at == at(30)
    assert [i.status for i in list_incidents(store)] == ["open", "resolved"]


def test_a_late_copy_of_an_ended_alert_neither_fires_again_nor_keeps_an_incident_open(
    store: Store,
) -> None:
    g = estate()
    (inc,) = ingest_alerts(
        store, [alert("latency_p99_high", 0, 2, deployment="dep1")], g, now=at(2)
    ).opened
    end = alert("latency_p99_high", 0, 5, status="resolved", deployment="dep1")
    ingest_alerts(store, [end, end], g, now=at(6))  # resent: Alertmanager sends some twice
    # A sighting from before the end, delivered after it.
    late = ingest_alerts(store, [alert("latency_p99_high", 0, 4, deployment="dep1")], g, now=at(7))
    assert late.opened == [] and [a.status for a in late.alerts] == ["resolved"]
    (row,) = list_alerts(store)
    assert row.status == "resolved" and row.incident_id == inc
    later = ingest_alerts(store, [alert("cpu_high", 36, host="elsewhere")], g, now=at(36))
    assert later.resolved == [inc]


# -- the hard scenarios ------------------------------------------------------------------------


def test_hard_scenarios_are_seeded_and_have_their_parts() -> None:
    one, same = generate(1001, "hard"), generate(1001, "hard")
    assert [n.alert for n in one.notifications] == [n.alert for n in same.notifications]
    assert 2 <= len(one.faults) <= 3
    assert {n.truth for n in one.notifications} >= {f.id for f in one.faults}
    assert any(n.alert.source == "alertmanager" for n in one.notifications)
    delivered = [n.delivered_at for n in one.notifications]
    assert delivered == sorted(delivered)
    seen = [n.alert.seen_at for n in one.notifications]
    assert seen != sorted(seen)  # late delivery puts sightings out of order
    missing = [f for s in range(1000, 1030) for f in generate(s, "hard").faults]
    share = sum(not f.root_alerted for f in missing) / len(missing)
    assert 0.35 <= share <= 0.75


def test_pairwise_scoring() -> None:
    assert pairwise_counts(["x", "x", "y"], [1, 1, 1]) == (1, 2, 0)
    assert pairwise_counts(["x", "x", "y"], [1, 2, 3]) == (0, 0, 1)


@pytest.mark.slow
def test_held_out_single_faults_offline() -> None:
    """Single faults with light noise on held-out seeds: grouping and root cause hold."""
    tp = fp = fn = 0
    ranks: list[int | None] = []
    for seed in range(1000, 1012):
        sc = generate(seed, "single")
        alerts, truths = sc.episodes()
        drafts = correlate(alerts, sc.graph)
        inc = [0] * len(alerts)
        ranked = {}
        for k, d in enumerate(drafts):
            for i in d.alert_indices:
                inc[i] = k
            ranked[k] = [r.node for r in d.summary.root_causes]
        a, b, c = pairwise_counts(truths, inc)
        tp, fp, fn = tp + a, fp + b, fn + c
        ranks += [r for _, r in root_hits(sc, truths, inc, ranked)]
    assert tp / (tp + fp) >= 0.7 and tp / (tp + fn) >= 0.7
    assert sum(r is not None and r < 3 for r in ranks) / len(ranks) >= 0.9


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_the_bound_is_perfect_without_noise_and_above_correlation_with_it() -> None:
    quiet = Level("quiet", (2, 3), (0.5, 0.5), 0.0, 0.0, 0, 0.3)
    for seed in range(3):
        truths, groups = indistinguishable_bound(generate(seed, quiet))
        assert pairwise_counts(truths, groups)[1:] == (0, 0)
    for level in ("concurrent", "hard"):
        bound = [0, 0, 0]
        ours = [0, 0, 0]
        for seed in range(20):
            sc = generate(seed, level)
            truths, groups = indistinguishable_bound(sc)
            bound = [x + y for x, y in zip(bound, pairwise_counts(truths, groups), strict=True)]
            alerts, truths = sc.episodes()
            inc = [0] * len(alerts)
            for k, d in enumerate(correlate(alerts, sc.graph)):
                for i in d.alert_indices:
                    inc[i] = k
            ours = [x + y for x, y in zip(ours, pairwise_counts(truths, inc), strict=True)]
        # Noise it cannot tell from symptoms costs even the oracle precision, never recall.
        assert bound[2] == 0 or bound[2] / (bound[0] + bound[2]) < 0.02
        assert _f1(*bound) > _f1(*ours), level


_HASH_RUN = """
import json
from opsloop.testing.aiops_blind import generate
from opsloop.testing.aiops_blind_score import run_store
score = run_store(generate(2, 1))
print(json.dumps([score.tp, score.predicted, [d["ranked"] for d in score.faults_detail]]))
"""


def test_grouping_through_the_store_does_not_depend_on_the_string_hash_seed() -> None:
    # Causes of equal gain were once taken in the order of a set of node names, which Python
    # shuffles per process: this scenario grouped differently from one run to the next.
    runs = {
        subprocess.run(
            [sys.executable, "-c", _HASH_RUN],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1
