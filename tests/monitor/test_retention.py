"""Retention of the prediction log, on every store backend: by age and by count, in batches,
with labels and chunks, and never before the monitors have read a window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.cli.main import app
from opsloop.context import Project
from opsloop.monitor.retention import prune_pass, prune_predictions
from opsloop.monitor.service import CURSOR_SERIES, run_monitors
from opsloop.serve.base import PredictionRecord
from opsloop.serve.store_sink import StorePredictionSink
from opsloop.spec.schema import PredictionLogSection, RetentionSection
from opsloop.store import Store, open_store
from tests.processes import stop

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def stores(store_url: str, tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    store = open_store(store_url)
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    yield store, artifacts
    store.close()


def _log(
    store: Store,
    deployment: str,
    times: list[datetime],
    *,
    prefix: str = "r",
    labelled: bool = True,
) -> list[str]:
    """One one-row request per time, each with a label that arrived an hour later."""
    ids = [f"{prefix}{i}" for i in range(len(times))]
    store.predictions.log(
        [
            {
                "request_id": rid,
                "deployment": deployment,
                "model_name": "m",
                "model_version": "1",
                "time": when,
                "latency_ms": 1.0,
                "shadow": False,
                "inputs": {"x": [float(i)]},
                "outputs": {"values": [0.5]},
                "rows": 1,
                "chunk": None,
            }
            for i, (rid, when) in enumerate(zip(ids, times, strict=True))
        ]
    )
    if labelled:
        store.predictions.log_feedback(
            [
                {
                    "request_id": rid,
                    "deployment": deployment,
                    "time": when + timedelta(hours=1),
                    "label": {"value": 1},
                }
                for rid, when in zip(ids, times, strict=True)
            ]
        )
    return ids


def _large(
    store: Store, artifacts: ArtifactStore, deployment: str, when: datetime, request_id: str
) -> str:
    """A 2,000-row request logged through the store sink, as a chunk; its digest."""
    sink = StorePredictionSink(
        store, deployment, artifacts=artifacts, policy=PredictionLogSection()
    )
    rng = np.random.default_rng(len(request_id))
    sink.write_batch(
        [
            PredictionRecord(
                request_id=request_id,
                model="m",
                version="1",
                inputs={"x": rng.normal(size=2_000).tolist()},
                outputs=rng.uniform(size=2_000).tolist(),
                latency_ms=5.0,
                timestamp=when,
            )
        ]
    )
    (row,) = [
        p
        for p in store.predictions.read(deployment=deployment)
        if p.request_id == request_id and p.time == when
    ]
    assert row.chunk is not None
    return row.chunk


def _monitored(store: Store, deployment: str, until: datetime) -> None:
    """Record that the monitors have read ``deployment``'s windows up to ``until``."""
    store.series.append([(CURSOR_SERIES, {"deployment": deployment}, until, 0.0)])


def _ids(store: Store, deployment: str | None = None) -> list[str]:
    return [
        p.request_id for p in store.predictions.read(deployment=deployment, include_shadow=True)
    ]


def _label_ids(store: Store) -> list[str]:
    return sorted(f.request_id for f in store.predictions.read_feedback())


def test_age_deletes_old_requests_their_labels_and_chunks(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    times = [NOW - timedelta(days=d) for d in (40, 35, 31, 29, 2)]
    ids = _log(store, "web", times)
    old_chunk = _large(store, artifacts, "web", NOW - timedelta(days=33), "big-old")
    new_chunk = _large(store, artifacts, "web", NOW - timedelta(days=3), "big-new")
    _monitored(store, "web", NOW - DAY)

    result = prune_predictions(store, artifacts, RetentionSection(max_age_days=30), now=NOW)
    assert (result.predictions, result.feedback, result.chunks) == (4, 3, 1)
    assert _ids(store) == [ids[3], "big-new", ids[4]]
    assert _label_ids(store) == sorted(ids[3:])
    assert not artifacts.exists(old_chunk) and artifacts.exists(new_chunk)
    assert result.notes == [] and result.kept_over_limit == 0
    (event,) = store.events.list(kind="predictions.pruned")
    assert event.details["predictions"] == 4
    # A second pass finds nothing more.
    again = prune_predictions(store, artifacts, RetentionSection(max_age_days=30), now=NOW)
    assert (again.predictions, again.feedback) == (0, 0)


def test_rows_the_monitors_have_not_read_are_kept(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    times = [NOW - timedelta(days=d) for d in (50, 45, 40, 35)]
    ids = _log(store, "web", times)
    # The monitors stopped 42 days ago: what came after has not been read.
    _monitored(store, "web", NOW - timedelta(days=42))
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=30, max_rows=1), now=NOW
    )
    assert _ids(store) == ids[2:]
    assert result.predictions == 2
    assert result.kept_over_limit == 1
    assert "have not read yet" in result.notes[0]
    # Labels that arrived after the monitors' mark stay too.
    assert _label_ids(store) == sorted(ids[2:])


def test_a_deployment_never_monitored_keeps_what_a_first_run_would_read(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    ids = _log(store, "new", [NOW - timedelta(days=d) for d in (20, 9, 7, 1)])
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=None, max_rows=1), now=NOW
    )
    # A first monitor run reads the last 7 days (and a window before): 20 and 9 days may go.
    assert _ids(store) == ids[2:]
    assert result.kept_over_limit == 1


def test_count_deletes_the_oldest_across_deployments_in_batches(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    base = NOW - timedelta(days=10)
    a = _log(store, "a", [base + timedelta(hours=2 * i) for i in range(30)], prefix="a")
    b = _log(store, "b", [base + timedelta(hours=2 * i + 1) for i in range(30)], prefix="b")
    for name in ("a", "b"):
        _monitored(store, name, NOW)
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=None, max_rows=25, batch_size=7), now=NOW
    )
    assert result.predictions == 35 and store.predictions.count() == 25
    assert result.batches >= 5
    kept = set(_ids(store))
    interleaved = [x for pair in zip(a, b, strict=True) for x in pair]
    assert kept == set(interleaved[35:])
    assert _label_ids(store) == sorted(kept)


def test_a_large_request_counts_with_all_its_rows(stores: tuple[Store, ArtifactStore]) -> None:
    """``max_rows`` bounds the chunks too: a 2,000-row request counts as 2,000 rows."""
    store, artifacts = stores
    old = _large(store, artifacts, "web", NOW - timedelta(days=5), "big-old")
    new = _large(store, artifacts, "web", NOW - timedelta(days=4), "big-new")
    ids = _log(store, "web", [NOW - timedelta(days=3)] * 10)
    _monitored(store, "web", NOW)
    assert (store.predictions.count(), store.predictions.count_rows()) == (12, 4_010)
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=None, max_rows=2_500), now=NOW
    )
    assert (result.predictions, result.rows, result.chunks) == (1, 2_000, 1)
    assert _ids(store) == ["big-new", *ids]
    assert not artifacts.exists(old) and artifacts.exists(new)


def test_a_label_of_a_request_id_still_logged_is_kept(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _log(store, "web", [NOW - timedelta(days=40)], prefix="same", labelled=False)
    _log(store, "web", [NOW - timedelta(days=1)], prefix="same", labelled=False)
    store.predictions.log_feedback(
        [
            {
                "request_id": "same0",
                "deployment": "web",
                "time": NOW - timedelta(days=39),
                "label": {"value": 0},
            }
        ]
    )
    _monitored(store, "web", NOW)
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=60, max_rows=1), now=NOW
    )
    assert result.predictions == 1 and result.feedback == 0
    assert _label_ids(store) == ["same0"]
    # Once older than max_age_days, a label goes whatever it belongs to.
    result = prune_predictions(store, artifacts, RetentionSection(max_age_days=30), now=NOW)
    assert result.feedback == 1 and _label_ids(store) == []


def test_a_chunk_another_request_references_stays(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    # The same request replayed: the same bytes, one blob for two rows.
    first = _large(store, artifacts, "web", NOW - timedelta(days=40), "replayed")
    second = _large(store, artifacts, "web", NOW - timedelta(days=1), "replayed")
    assert first == second
    _monitored(store, "web", NOW)
    result = prune_predictions(store, artifacts, RetentionSection(max_age_days=30), now=NOW)
    assert result.predictions == 1 and result.chunks == 0
    assert artifacts.exists(first)


def test_retention_waits_for_a_real_monitor_run(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    start = NOW - timedelta(days=3)
    ids = _log(store, "web", [start + timedelta(hours=6 * i) for i in range(12)], labelled=False)
    retention = RetentionSection(max_age_days=None, max_rows=2)
    assert prune_predictions(store, artifacts, retention, now=NOW).predictions == 0
    run_monitors(store, artifacts, now=start + timedelta(days=1, minutes=1), window=DAY)
    result = prune_predictions(store, artifacts, retention, now=NOW)
    assert _ids(store) == ids[4:] and result.kept_over_limit == 6


def test_opsloop_monitor_prune(project: Project) -> None:
    (project.dir / "opsloop.yaml").write_text(
        "project: demo\nmonitoring:\n  prediction_log:\n    retention: {max_age_days: 1}\n"
    )
    now = datetime.now(UTC)
    ids = _log(project.store, "web", [now - timedelta(days=3), now - timedelta(hours=2)])
    _monitored(project.store, "web", now - timedelta(hours=1))
    out = CliRunner().invoke(app, ["monitor", "prune"])
    assert out.exit_code == 0, out.output
    assert "deleted 1 request(s), 1 label(s)" in out.output
    assert _ids(project.store) == ids[1:]
    assert prune_pass(project).predictions == 0


def test_opsloop_up_applies_retention_after_its_monitor_pass(project: Project) -> None:
    """``opsloop up`` in a real process: old requests the monitors have read go."""
    (project.dir / "opsloop.yaml").write_text(
        "project: demo\nmonitoring:\n  prediction_log:\n    retention: {max_age_days: 1}\n"
    )
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", *args],
            cwd=project.dir,
            check=True,
            capture_output=True,
        )
    now = datetime.now(UTC)
    ids = _log(project.store, "web", [now - timedelta(days=3), now - timedelta(hours=2)])
    _monitored(project.store, "web", now - timedelta(hours=1))
    env = {**os.environ, "OPSLOOP_PROJECT_DIR": str(project.dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsloop", "up", "--interval", "0.5", "--monitor-every", "0.5"],
        cwd=project.dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while _ids(project.store) != ids[1:]:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "opsloop up did not apply the retention"
            time.sleep(0.3)
    finally:
        stop(proc)
    assert [
        e.details["predictions"] for e in project.store.events.list(kind="predictions.pruned")
    ] == [1]
