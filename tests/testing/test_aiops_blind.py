"""The blind scenario generator (opsloop.testing.aiops_blind) and its scorer, run end to end
through the offline path and the store path (real SQLite)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from opsloop.testing.aiops_blind import FAULT_KINDS, LEVELS, generate
from opsloop.testing.aiops_blind_score import pair_counts, run_offline, run_store

SEEDS = range(20)


def _flat(seed: int, level: int) -> list[tuple[object, ...]]:
    s = generate(seed, level)
    return [
        (n.alert.model_dump_json(), n.delivered_at, n.truth, n.episode) for n in s.notifications
    ] + [(f.kind, f.variant, f.root, f.started_at) for f in s.faults]


@pytest.mark.parametrize("level", LEVELS)
def test_the_same_seed_gives_the_same_scenario(level: int) -> None:
    assert _flat(3, level) == _flat(3, level)
    assert _flat(3, level) != _flat(4, level)
    assert generate(3, level).graph().edges == generate(3, level).graph().edges


def test_each_level_has_the_faults_it_promises() -> None:
    kinds = set()
    for seed in SEEDS:
        counts = {level: len(generate(seed, level).faults) for level in LEVELS}
        assert counts[1] == 1
        assert counts[2] == 2
        assert counts[3] in {2, 3}
        for level in LEVELS:
            s = generate(seed, level)
            graph = s.graph()
            roots = [f.root for f in s.faults]
            assert len(set(roots)) == len(roots)
            assert all(r in graph for r in roots)
            kinds.update(f.kind for f in s.faults)
    assert kinds == set(FAULT_KINDS)


@pytest.mark.parametrize("level", LEVELS)
def test_every_alert_names_the_node_it_is_about(level: int) -> None:
    for seed in SEEDS:
        s = generate(seed, level)
        graph = s.graph()
        for episode in s.episodes:
            assert graph.resolve(episode.labels) == episode.subject, (episode.name, episode.labels)


@pytest.mark.parametrize("level", LEVELS)
def test_notifications_behave_like_alertmanager(level: int) -> None:
    late = 0
    for seed in range(5):
        s = generate(seed, level)
        truths = {f.id for f in s.faults}
        by_episode = defaultdict(list)
        for n in s.notifications:
            by_episode[n.episode].append(n)
            assert n.truth in truths or n.truth.startswith("noise-") or n.truth == "flapper"
            assert s.start <= n.alert.starts_at <= n.delivered_at
            assert (n.alert.status == "resolved") == (n.alert.ends_at is not None)
        for sent in by_episode.values():
            assert len({(n.alert.fingerprint, n.alert.starts_at, n.truth) for n in sent}) == 1
            assert sum(n.alert.status == "resolved" for n in sent) <= 1
        # Faults are reported, and some alerts repeat while they fire.
        assert {n.truth for n in s.notifications} >= truths
        assert max(len(v) for v in by_episode.values()) > 2
        # A firing notification is sent at its group's flush (its last_seen_at); a few are
        # retried minutes late, after notifications flushed later.
        late += sum(
            n.alert.status == "firing"
            and n.delivered_at - (n.alert.last_seen_at or n.alert.starts_at) > timedelta(minutes=1)
            for n in s.notifications
        )
        delivered = [n.delivered_at for n in s.notifications]
        assert delivered == sorted(delivered)
    assert late > 0


def test_noise_and_missing_roots_can_be_switched_off() -> None:
    for seed in SEEDS:
        s = generate(seed, 3, noise=False, missing_roots=False)
        assert {n.truth for n in s.notifications} <= {f.id for f in s.faults}
        assert all(f.root_alerted for f in s.faults)
        subjects = {e.subject for e in s.episodes}
        assert all(f.root in subjects for f in s.faults)


def test_pair_counts() -> None:
    # Two incidents: {a1, a2, b1} and {b2}; c alone in none.
    units = [(1, "a"), (1, "a"), (1, "b"), (2, "b"), (None, "c"), (None, "c")]
    assert pair_counts(units) == (1, 3, 3)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("level", LEVELS)
def test_both_paths_score_in_range(seed: int, level: int) -> None:
    s = generate(seed, level)
    for score in (run_offline(s), run_store(s)):
        assert score.units > 0
        assert score.faults == len(s.faults)
        assert 0 <= score.tp <= min(score.predicted, score.actual)
        for value in (score.precision, score.recall, score.f1):
            assert 0.0 <= value <= 1.0
        assert 0 <= score.first <= score.top3 <= score.faults
        assert len(score.faults_detail) == score.faults


@pytest.mark.parametrize(
    "seed",
    [
        # A traffic surge whose load reaches other deployments through the hosts they share.
        0,
        pytest.param(
            1,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known limit, kept visible: a dataset whose own check fires after its "
                "features' alerts is chosen twice as a cause, one incident each",
            ),
        ),
    ],
)
def test_a_fault_without_noise_is_one_incident_offline(seed: int) -> None:
    s = generate(seed, 1, noise=False, missing_roots=False)
    assert run_offline(s).recall == 1.0
