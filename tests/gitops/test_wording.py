"""Deployment changes in words: every field a diff can hold reads as text, never a repr."""

from __future__ import annotations

import json

import pytest

from opsloop.gitops.reconciler import DeploymentOutcome, compute_diff
from opsloop.gitops.types import (
    HealthStatus,
    LiveDeployment,
    RuntimeSpec,
    SyncStatus,
)
from opsloop.gitops.wording import describe_change, describe_diff, split_text, versions_text


def test_split_text() -> None:
    assert split_text({"1": 90.0, "2": 10.0}) == "v1 90%, v2 10%"
    assert split_text({2: 1, 10: 3}) == "v2 25%, v10 75%"
    assert split_text({1: 100.0}) == "v1 100%"
    assert split_text({1: 1, 2: 1, 3: 1}) == "v1 33.3%, v2 33.3%, v3 33.3%"
    assert split_text({1: 100.0, 2: 0.0}, shadow=[3]) == "v1 100%; shadow v3"
    assert split_text({}) == "none"
    assert versions_text([4, 3, 3]) == "v3, v4" and versions_text([]) == "none"


@pytest.mark.parametrize(
    ("key", "live", "desired", "words"),
    [
        ("deployment", None, "running", "not running → running"),
        ("deployment", "running", None, "running → stopped (not in Git)"),
        ("traffic", {"1": 100.0}, {"1": 90.0, "2": 10.0}, "traffic: v1 100% → v1 90%, v2 10%"),
        ("version", 1, 2, "version: v1 → v2"),
        ("alias", None, "champion", "alias: none → @champion"),
        ("shadow", [], [3], "shadow: none → v3"),
        ("replicas", 1, 2, "replicas: 1 → 2"),
        ("port", 8601, 8602, "port: 8601 → 8602"),
        (
            "resources",
            {},
            {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "resources: none → requests cpu=500m, memory=512Mi; limits memory=1Gi",
        ),
        ("labels", {"team": "a"}, {"team": "b"}, "labels: team=a → team=b"),
        ("monitoring", None, "default", "monitoring: none → default"),
        ("running", 0, 1, "replicas running: 0 → 1"),
        (
            "routing[0]",
            {"versions": [1, 2], "traffic": {"1": 50.0, "2": 50.0}, "shadow": []},
            {"versions": [1], "traffic": {"1": 100.0}, "shadow": []},
            "replica 0 routing (changed outside Git): v1 50%, v2 50% → v1 100%",
        ),
    ],
)
def test_every_field_in_words(key: str, live: object, desired: object, words: str) -> None:
    assert describe_change(key, live, desired) == words


def test_a_real_diff_reads_as_words() -> None:
    spec = RuntimeSpec(name="d", model="churn", version=1, traffic={1: 100.0}, port=8601)
    canary = spec.model_copy(update={"traffic": {1: 90.0, 2: 10.0}, "shadow": [3]})
    live = LiveDeployment(name="d", spec=spec, running=1)
    # As stored: the diff goes through JSON (and back from the store) as strings and floats.
    diff = json.loads(json.dumps(compute_diff(canary, live)))
    text = describe_diff(diff)
    assert text == "traffic: v1 100% → v1 90%, v2 10%; shadow: none → v3"
    assert describe_diff(compute_diff(spec, None)) == "not running → running"
    assert "None" not in describe_diff(compute_diff(canary, live)) and "{" not in text


def test_an_outcome_says_what_it_serves() -> None:
    def outcome(**kw: object) -> DeploymentOutcome:
        return DeploymentOutcome(
            name="d", sync=SyncStatus.SYNCED, health=HealthStatus.HEALTHY, reason="", **kw
        )

    assert outcome(version=2, traffic={1: 90.0, 2: 10.0}).serving == "v1 90%, v2 10%"
    assert outcome(version=1, traffic={1: 100.0}).serving == "v1"
    assert outcome(version=1, traffic={1: 100.0}, shadow=[2]).serving == "v1 100%; shadow v2"
    assert outcome(version=3).serving == "v3"
    assert outcome().serving == "-"
