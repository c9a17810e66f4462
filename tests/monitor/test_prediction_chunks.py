"""Monitors read requests logged out of line: Parquet chunks, samples and dropped rows count
with their real rows in drift, quality and service health."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.errors import SpecError
from opsloop.monitor.service import CURSOR_SERIES, run_monitors
from opsloop.monitor.windows import LABEL, PREDICTION, labelled_window, load_window, rows_frame
from opsloop.serve.base import PredictionRecord
from opsloop.serve.store_sink import StorePredictionSink
from opsloop.spec import ProjectSpec, parse_spec
from opsloop.spec.schema import PredictionLogSection
from opsloop.store import Store, open_store
from opsloop.store.prediction_chunks import read_chunk, write_chunk
from opsloop.store.types import PredictionInfo
from tests.monitor.test_service import (
    DEPLOYMENT,
    FEATURES,
    MODEL,
    REQUESTS,
    ROWS,
    STEP,
    T0,
    _at,
    _features,
    _register,
    _score,
    _serve,
    _values,
    _version_labels,
)

BIG = 300_000


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    yield store, artifacts
    store.close()


def _large(
    store: Store,
    artifacts: ArtifactStore | None,
    n: int,
    *,
    when: datetime,
    request_id: str = "big",
    shift: float = 0.0,
    policy: PredictionLogSection | None = None,
    seed: int = 11,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Log one request of ``n`` rows through the store sink; its features, scores and truth."""
    rng = np.random.default_rng(seed)
    df = _features(rng, n, shift=shift)
    proba = _score(df)
    truth = (rng.uniform(size=n) < proba).astype(int)
    sink = StorePredictionSink(store, DEPLOYMENT, artifacts=artifacts, policy=policy)
    sink.write_batch(
        [
            PredictionRecord(
                request_id=request_id,
                model=MODEL,
                version="1",
                inputs={c: df[c].tolist() for c in FEATURES},
                outputs=np.column_stack([1.0 - proba, proba]).tolist(),
                latency_ms=80.0,
                timestamp=when,
            )
        ]
    )
    return df, proba, truth


def test_drift_counts_every_row_of_a_referenced_request(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(2))
    df, _, _ = _large(store, artifacts, BIG, when=T0 + timedelta(minutes=7), shift=1.5)
    (big,) = [p for p in store.predictions.read() if p.request_id == "big"]
    assert big.chunk is not None and big.inputs == {}

    win = load_window(store, DEPLOYMENT, T0, T0 + STEP, artifacts=artifacts)
    assert win.notes == [] and win.malformed == []
    assert len(win.rows) == win.row_count == REQUESTS * ROWS + BIG
    rows = win.rows[win.rows["request_id"] == "big"]
    np.testing.assert_array_equal(rows["f1"].to_numpy(), df["f1"].to_numpy())
    assert rows["plan"].tolist() == df["plan"].tolist()
    np.testing.assert_allclose(rows[PREDICTION].to_numpy(), _score(df))
    assert win.rows["f0"].dtype == np.float64

    result = run_monitors(store, artifacts, now=_at(2))
    assert result.notes == []
    # The 300,000 shifted rows outweigh the 1,200 others: f1 and f2 drift in window 0 only.
    assert _values(store, "drift.detected", **_version_labels("f1")) == [1.0, 0.0]
    assert _values(store, "drift.detected", **_version_labels("f0")) == [0.0, 0.0]
    dep = {"deployment": DEPLOYMENT}
    assert _values(store, "service.rows", **dep) == [REQUESTS * ROWS + BIG, REQUESTS * ROWS]
    assert _values(store, "service.requests", **dep) == [REQUESTS + 1, REQUESTS]
    # The cursor marks where each window ended; its value is the window's length.
    cursor = store.series.read(CURSOR_SERIES, dep)
    assert [(p.time, p.value) for p in cursor] == [
        (T0 + STEP, STEP.total_seconds()),
        (T0 + 2 * STEP, STEP.total_seconds()),
    ]


def test_a_window_reads_at_most_its_cap_of_chunk_rows(
    stores: tuple[Store, ArtifactStore], caplog: pytest.LogCaptureFixture
) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(1))
    when = T0 + timedelta(minutes=3)
    _large(store, artifacts, 30_000, when=when, request_id="a", shift=1.5)
    _large(store, artifacts, 10_000, when=when, request_id="b", shift=1.5, seed=12)

    win = load_window(store, DEPLOYMENT, T0, T0 + STEP, artifacts=artifacts, max_rows=4_000)
    counts = win.rows["request_id"].value_counts()
    assert (counts["a"], counts["b"]) == (3_000, 1_000)
    assert win.row_count == REQUESTS * ROWS + 40_000
    assert len(win.notes) == 1 and "a seeded sample of 4000 rows" in win.notes[0]
    again = load_window(store, DEPLOYMENT, T0, T0 + STEP, artifacts=artifacts, max_rows=4_000)
    pd.testing.assert_frame_equal(win.rows, again.rows)
    # The sample rows are the request's rows at those positions, labels included.
    (a,) = [p for p in store.predictions.read() if p.request_id == "a"]
    full = read_chunk(artifacts, str(a.chunk))
    sampled = win.rows[win.rows["request_id"] == "a"]
    assert set(sampled["f0"]) <= set(full.inputs["f0"])

    spec = ProjectSpec(project="p", monitoring={"prediction_log": {"window_max_rows": 4_000}})
    with caplog.at_level(logging.WARNING, logger="opsloop.monitor"):
        result = run_monitors(store, artifacts, now=_at(1), spec=spec)
    assert "more than the 4000 a window reads" in caplog.text
    assert any("a seeded sample of 4000 rows" in n for n in result.notes)
    assert result.windows[0].rows == REQUESTS * ROWS + 40_000
    assert _values(store, "drift.detected", **_version_labels("f2")) == [1.0]


def test_quality_scores_the_labelled_rows_of_a_chunk(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _, proba, truth = _large(store, artifacts, 3_000, when=T0 + timedelta(minutes=1))
    arrival = T0 + STEP + timedelta(minutes=2)
    store.predictions.log_feedback(
        [
            {
                "request_id": "big",
                "deployment": DEPLOYMENT,
                "time": arrival,
                "label": {"value": truth.tolist()},
            }
        ]
    )
    win = labelled_window(store, DEPLOYMENT, T0 + STEP, T0 + 2 * STEP, artifacts=artifacts)
    assert win.rows[LABEL].tolist() == truth.tolist()
    run_monitors(store, artifacts, now=_at(2))
    labels = _version_labels()
    assert _values(store, "quality.labelled", **labels) == [3_000]
    roc = _values(store, "quality.roc_auc", **labels)
    assert roc == pytest.approx([roc_auc_score(truth, proba)])


def test_a_sampled_request_matches_its_labels_by_position(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, _ = stores
    policy = PredictionLogSection(large_requests="sample", sample_rows=500)
    df, proba, truth = _large(store, None, 5_000, when=T0, policy=policy)
    store.predictions.log_feedback(
        [{"request_id": "big", "deployment": DEPLOYMENT, "label": {"value": truth.tolist()}}]
    )
    (row,) = store.predictions.read()
    index = row.outputs["log"]["index"]
    win = load_window(store, DEPLOYMENT, T0, T0 + STEP)
    assert len(win.rows) == 500 and win.row_count == 5_000
    assert win.requests["rows"].tolist() == [5_000]
    np.testing.assert_array_equal(win.rows["f0"].to_numpy(), df["f0"].to_numpy()[index])
    assert win.rows[LABEL].tolist() == truth[index].tolist()
    np.testing.assert_allclose(win.rows[PREDICTION].to_numpy(), proba[index])


def test_a_dropped_request_counts_but_has_no_rows(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(1))
    _large(store, None, 5_000, when=T0, policy=PredictionLogSection(large_requests="drop"))
    win = load_window(store, DEPLOYMENT, T0, T0 + STEP, artifacts=artifacts)
    assert win.malformed == [] and win.notes == []
    assert len(win.rows) == REQUESTS * ROWS
    assert win.row_count == REQUESTS * ROWS + 5_000
    result = run_monitors(store, artifacts, now=_at(1))
    assert result.notes == []
    assert _values(store, "service.rows", deployment=DEPLOYMENT) == [REQUESTS * ROWS + 5_000]


def test_a_chunk_that_cannot_be_read_is_left_out_and_said(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(1))
    _large(store, artifacts, 2_000, when=T0)
    (big,) = [p for p in store.predictions.read() if p.request_id == "big"]

    blind = load_window(store, DEPLOYMENT, T0, T0 + STEP)
    assert len(blind.rows) == REQUESTS * ROWS and blind.row_count == REQUESTS * ROWS + 2_000
    assert "no artifact store was given" in blind.notes[0]

    assert artifacts.delete(str(big.chunk))
    gone = load_window(store, DEPLOYMENT, T0, T0 + STEP, artifacts=artifacts)
    assert len(gone.rows) == REQUESTS * ROWS and gone.malformed == []
    assert "cannot be read" in gone.notes[0]
    result = run_monitors(store, artifacts, now=_at(1))
    assert any("cannot be read" in n for n in result.notes)
    assert _values(store, "service.requests", deployment=DEPLOYMENT) == [REQUESTS + 1]


def _info(
    request_id: str, inputs: dict[str, list[object]], values: list[object], **extra: object
) -> PredictionInfo:
    return PredictionInfo.model_validate(
        {
            "id": len(request_id),
            "request_id": request_id,
            "deployment": DEPLOYMENT,
            "model_name": MODEL,
            "model_version": "1",
            "time": T0,
            "latency_ms": 5.0,
            "shadow": False,
            "inputs": inputs,
            "outputs": {"values": values},
            **extra,
        }
    )


def test_rows_frame_mixes_inline_and_chunk_rows(tmp_path: Path) -> None:
    """Columns a request lacks are missing, whichever way each request was logged."""
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    ref = write_chunk(
        artifacts,
        request_id="b",
        model=MODEL,
        version="1",
        inputs={"x": [3, None], "new": [True, False]},
        outputs=[[0.5, 0.5], [0.4, 0.6]],
    )
    records = [
        _info("a", {"x": [1, 2], "c": ["u", "v"]}, [[0.9, 0.1], [0.2, 0.8]]),
        _info("bb", {}, [], rows=2, chunk=ref.digest),
        _info("ccc", {"x": [None], "c": [None]}, [[0.3, 0.7]]),
    ]
    rows, requests, malformed = rows_frame(
        records, {"a": [1, 0], "bb": [0, 1], "ccc": 1}, artifacts=artifacts
    )
    assert malformed == []
    assert list(rows.columns[:3]) == ["x", "c", "new"]
    assert requests["rows"].tolist() == [2, 2, 1]
    assert rows["x"].dtype == np.float64
    assert rows["x"].isna().tolist() == [False, False, False, True, True]
    assert rows["c"].tolist() == ["u", "v", None, None, None]
    assert rows["new"].tolist() == [None, None, True, False, None]
    assert rows[PREDICTION].tolist() == [0.1, 0.8, 0.5, 0.6, 0.7]
    assert rows[LABEL].tolist() == [1, 0, 0, 1, 1]
    assert str(rows["request_time"].dtype).startswith("datetime64")


def test_the_prediction_log_section_is_checked_with_its_line() -> None:
    text = (
        "project: p\n"
        "monitoring:\n"
        "  prediction_log:\n"
        "    max_inline_rows: 100\n"
        "    large_requests: sample\n"
        "    sample_rows: 500\n"
    )
    with pytest.raises(SpecError, match=r"sample_rows \(500\) cannot exceed") as err:
        parse_spec(text)
    assert err.value.line == 3
    with pytest.raises(SpecError, match="unknown key"):
        parse_spec("project: p\nmonitoring:\n  prediction_log:\n    retention: {max_days: 3}\n")
    with pytest.raises(SpecError, match="large_requests"):
        parse_spec("project: p\nmonitoring: {prediction_log: {large_requests: keep}}\n")
    spec = parse_spec(
        "project: p\nmonitoring:\n  prediction_log:\n"
        "    retention: {max_age_days: 7, max_rows: null}\n"
    )
    log = spec.monitoring.prediction_log
    assert (log.large_requests, log.max_inline_rows) == ("reference", 1_000)
    assert (log.retention.max_age_days, log.retention.max_rows) == (7, None)
