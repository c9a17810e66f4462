"""Monitoring passes resume each series' detector from its checkpoint in the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from opsloop.aiops.alerts import detect_anomalies
from opsloop.aiops.detectors import FusedDetector, get_detector
from opsloop.aiops.detectors.state import detector_digest, dump_state
from opsloop.store import Store, open_store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store_of(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'checkpoints.db'}", actor="tester")
    yield s
    s.close()


def _values(n: int) -> list[float]:
    rng = np.random.default_rng(5)
    values = rng.normal(100, 2, n)
    values[700:703] = 400
    return [float(v) for v in values]


def test_passes_resume_and_score_exactly_as_one_uninterrupted_run(store_of: Store) -> None:
    store = store_of
    labels = {"deployment": "churn-prod"}
    values = _values(900)
    cuts = [0, 300, 650, 820, 900]
    alerts = []
    for a, b in pairwise(cuts):
        store.series.append([("latency", labels, at(i), values[i]) for i in range(a, b)])
        alerts += detect_anomalies(store, threshold=0.7, since=at(a), last=None)
    digest = detector_digest(FusedDetector())
    saved = store.detector_states.get("latency", labels, digest)
    assert saved is not None
    assert saved.points == 900 and saved.last_time == at(899)
    # The stored state is that of one detector that saw the whole series at once.
    whole = FusedDetector()
    scores = whole.score_many(values, [at(i) for i in range(900)])
    state = json.loads(saved.state)
    assert state["detector"] == dump_state(whole)
    recent = state["recent"]
    assert len(recent) == 900
    assert [r[2] for r in recent] == [float(s) for s in scores]
    # And the alerts of the passes are those of one pass over everything.
    once = detect_anomalies(store, threshold=0.7, last=None, checkpoint=False)
    assert [(a.status, a.starts_at) for a in alerts] == [(a.status, a.starts_at) for a in once]
    assert any(a.status == "firing" and at(699) <= a.starts_at <= at(703) for a in alerts)


def test_a_pass_without_new_points_reads_its_checkpoint_only(store_of: Store) -> None:
    store = store_of
    store.series.append([("latency", {}, at(i), v) for i, v in enumerate(_values(800))])
    first = detect_anomalies(store, threshold=0.7)
    again = detect_anomalies(store, threshold=0.7)
    assert first == again and first


def test_a_changed_setting_or_a_broken_checkpoint_replays(store_of: Store) -> None:
    store = store_of
    store.series.append([("latency", {}, at(i), v) for i, v in enumerate(_values(800))])
    detect_anomalies(store, threshold=0.7)
    other = detect_anomalies(
        store, threshold=0.7, detector=lambda: get_detector("ensemble", suppress_factor=0.6)
    )
    assert other, "a different setting starts afresh and still finds the spike"
    digest = detector_digest(FusedDetector())
    store.detector_states.put("latency", {}, digest, last_time=at(799), points=800, state="{broken")
    assert detect_anomalies(store, threshold=0.7), "a broken checkpoint is replayed over"
    assert json.loads(store.detector_states.get("latency", {}, digest).state)["recent"]  # type: ignore[union-attr]
    assert store.detector_states.delete("latency") == 2


def test_the_scored_tail_kept_for_alerts_is_bounded(store_of: Store) -> None:
    store = store_of
    store.series.append([("latency", {}, at(i), v) for i, v in enumerate(_values(800))])
    detect_anomalies(store, threshold=0.7, last=100)
    store.series.append([("latency", {}, at(800 + i), 100.0) for i in range(10)])
    detect_anomalies(store, threshold=0.7, last=100)
    saved = store.detector_states.get("latency", {}, detector_digest(FusedDetector()))
    assert saved is not None and saved.points == 110
    recent = json.loads(saved.state)["recent"]
    assert len(recent) == 100
    assert datetime.fromisoformat(recent[-1][0]) == at(809)
