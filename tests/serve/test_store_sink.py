"""Predictions and feedback reach the metadata store, where the monitors read them; the
store holds one label per request and tells the server which requests it logged."""

from __future__ import annotations

import datetime as dt
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import Text, cast, func, select

from opsloop.artifacts import open_artifact_store
from opsloop.cli.serve import _sink
from opsloop.context import Project, open_project, set_current_project
from opsloop.serve import FeedbackRecord, FeedbackTarget, ServerConfig
from opsloop.serve.base import PredictionRecord
from opsloop.serve.store_sink import StoreFeedbackSink, StorePredictionSink
from opsloop.spec.schema import PredictionLogSection
from opsloop.store import Store, open_store
from opsloop.store import models as m
from opsloop.store.prediction_chunks import read_chunk
from tests.serve.conftest import run_server
from tests.serve.models import churn_frame, churn_model, numeric_model


def test_requests_and_labels_land_in_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    config = ServerConfig(
        models=[churn_model("1")],
        port=0,
        prediction_sink=StorePredictionSink(store, "churn-prod"),
        feedback_sink=StoreFeedbackSink(store, "churn-prod"),
    )
    df, _ = churn_frame(5)
    records = df.to_dict(orient="records")
    ids = []
    with run_server(config) as running:
        for i, row in enumerate(records):
            resp = httpx.post(
                f"{running.url}/invocations",
                json={"dataframe_records": [row]},
                headers={"x-request-id": f"req-{i}"},
            )
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["x-request-id"])
        fb = httpx.post(f"{running.url}/v1/feedback", json={"request_id": ids[0], "label": 1})
        assert fb.status_code < 300, fb.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(store.predictions.read()) < len(ids):
            time.sleep(0.1)
    logged = store.predictions.read(deployment="churn-prod")
    assert [p.request_id for p in logged] == ids
    first = logged[0]
    assert first.model_name == "churn" and first.model_version == "1"
    assert set(first.inputs) == set(df.columns)
    assert len(first.outputs["values"]) == 1
    labels = store.predictions.read_feedback(request_ids=[ids[0]])
    assert [f.label for f in labels] == [{"value": 1}]
    store.close()


def test_a_record_from_the_data_file_keeps_its_ids_in_the_store(store_url: str) -> None:
    store = open_store(store_url)
    config = ServerConfig(
        models=[churn_model("1")], port=0, prediction_sink=StorePredictionSink(store, "churn-prod")
    )
    df, _ = churn_frame(3)
    rows = df.assign(customer_id=["c-1", "c-2", "c-3"], signup_date="2024-05-01")
    records = orjson.loads(rows.to_json(orient="records"))
    with run_server(config) as running:
        resp = httpx.post(
            f"{running.url}/invocations",
            json={"dataframe_records": records},
            headers={"x-request-id": "file-1"},
        )
        assert resp.status_code == 200, resp.text
        assert "customer_id" in resp.headers["x-opsloop-warning"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.predictions.read():
            time.sleep(0.1)
    (logged,) = store.predictions.read(deployment="churn-prod")
    assert logged.ids == {"customer_id": ["c-1", "c-2", "c-3"], "signup_date": ["2024-05-01"] * 3}
    # The inputs stay the model's columns: the monitors see what the model saw.
    assert set(logged.inputs) == set(df.columns)
    assert len(logged.outputs["values"]) == 3 and len(logged.outputs["values"][0]) == 2
    store.close()


# -- large requests -------------------------------------------------------------------------


def _record(n: int, request_id: str = "big-1", seed: int = 0) -> PredictionRecord:
    rng = np.random.default_rng(seed)
    return PredictionRecord(
        request_id=request_id,
        model="num",
        version="1",
        inputs={"f0": rng.normal(size=n).tolist(), "plan": rng.choice(["a", "b"], n).tolist()},
        outputs=rng.uniform(size=(n, 2)).tolist(),
        latency_ms=3.0,
        timestamp=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
    )


def _stored_json_bytes(store: Store) -> list[int]:
    """Size of each predictions row's JSON columns as the backend stores them."""
    size = func.length(cast(m.Prediction.inputs, Text)) + func.length(
        cast(m.Prediction.outputs, Text)
    )
    with store.db.read() as s:
        return [int(v) for v in s.scalars(select(size).order_by(m.Prediction.id))]


def test_a_large_request_is_logged_as_a_parquet_chunk(tmp_path: Path) -> None:
    """300,000 rows through a real server: the row stays small, the chunk holds them all."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    model = numeric_model("1")
    config = ServerConfig(
        models=[model],
        port=0,
        max_body_bytes=64 * 1024 * 1024,
        prediction_sink=StorePredictionSink(store, "num-prod", artifacts=artifacts),
    )
    n = 300_000
    rng = np.random.default_rng(5)
    data = rng.normal(size=(n, 4))
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [n, 4], "data": data.ravel().tolist()}
        ]
    }
    with run_server(config) as running:
        resp = httpx.post(
            f"{running.url}/v2/models/num/infer",
            content=orjson.dumps(body),
            headers={"content-type": "application/json", "x-request-id": "big-1"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text[:300]
        small = httpx.post(
            f"{running.url}/invocations",
            json={"instances": [[0.1, 0.2, 0.3, 0.4]]},
            headers={"x-request-id": "small-1"},
        )
        assert small.status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(store.predictions.read()) < 2:
            time.sleep(0.1)
    big, one = store.predictions.read(deployment="num-prod")
    assert (big.request_id, big.rows, one.rows, one.chunk) == ("big-1", n, 1, None)
    assert big.inputs == {} and big.outputs["values"] == []
    assert big.outputs["log"]["policy"] == "reference"
    assert big.outputs["log"]["columns"] == ["f0", "f1", "f2", "f3"]
    assert big.chunk is not None and artifacts.exists(big.chunk)
    assert big.outputs["log"]["bytes"] == artifacts.size(big.chunk)
    # The row holds a reference, not 300,000 rows (which took 13 MB as JSON).
    big_size, _ = _stored_json_bytes(store)
    assert big_size < 1_000, big_size
    chunk = read_chunk(artifacts, big.chunk)
    np.testing.assert_array_equal(chunk.inputs.to_numpy(), data)
    expected = model.predict(pd.DataFrame(data, columns=["f0", "f1", "f2", "f3"]))
    np.testing.assert_allclose(np.asarray(chunk.outputs), expected)
    assert list(chunk.inputs.columns) == ["f0", "f1", "f2", "f3"]
    store.close()


def test_the_threshold_is_the_largest_inline_request(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    policy = PredictionLogSection(max_inline_rows=50, sample_rows=10)
    sink = StorePredictionSink(store, "d", artifacts=artifacts, policy=policy)
    sink.write_batch([_record(50, "at"), _record(51, "above")])
    at, above = store.predictions.read()
    assert (at.chunk, at.rows, len(at.outputs["values"]), len(at.inputs["f0"])) == (
        None,
        50,
        50,
        50,
    )
    assert above.chunk is not None and above.rows == 51 and above.inputs == {}
    store.close()


def test_a_retried_write_stores_the_chunk_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    sink = StorePredictionSink(store, "d", artifacts=artifacts)
    record = _record(2_000)
    sink.write_batch([record])
    sink.write_batch([record])
    first, second = store.predictions.read()
    assert first.chunk == second.chunk
    assert len(list((tmp_path / "artifacts").rglob("*"))) == 3  # sha256/, xx/, the blob
    store.close()


def test_the_sample_policy_keeps_a_seeded_sample_inline(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    policy = PredictionLogSection(large_requests="sample", sample_rows=100, seed=3)
    sink = StorePredictionSink(store, "d", policy=policy)
    record, other = _record(5_000, "s-1"), _record(5_000, "s-2")
    sink.write_batch([record, record, other])
    first, again, second = store.predictions.read()
    log = first.outputs["log"]
    index = log["index"]
    assert (first.rows, first.chunk, log["policy"], log["seed"]) == (5_000, None, "sample", 3)
    assert len(index) == 100 and index == sorted(set(index))
    assert first.inputs["f0"] == [record.inputs["f0"][i] for i in index]
    assert first.inputs["plan"] == [record.inputs["plan"][i] for i in index]
    assert first.outputs["values"] == [record.outputs[i] for i in index]
    assert first.ids is None
    # The same request samples the same rows; another request other rows.
    assert again.outputs["log"]["index"] == index
    assert second.outputs["log"]["index"] != index
    assert max(_stored_json_bytes(store)) < 20_000
    store.close()


def test_a_sampled_large_request_keeps_the_ids_of_its_sampled_rows(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    policy = PredictionLogSection(large_requests="sample", max_inline_rows=100, sample_rows=10)
    record = _record(500, "s-ids")
    record.ids = {"customer_id": [f"c-{i}" for i in range(500)]}
    StorePredictionSink(store, "d", policy=policy).write_batch([record])
    (row,) = store.predictions.read()
    index = row.outputs["log"]["index"]
    assert len(index) == 10
    assert row.ids == {"customer_id": [f"c-{i}" for i in index]}
    store.close()


def test_the_drop_policy_keeps_counts_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    sink = StorePredictionSink(store, "d", policy=PredictionLogSection(large_requests="drop"))
    sink.write_batch([_record(5_000)])
    (row,) = store.predictions.read()
    assert (row.rows, row.chunk, row.inputs, row.outputs["values"]) == (5_000, None, {}, [])
    assert row.outputs["log"] == {"policy": "drop", "columns": ["f0", "plan"]}
    store.close()


def test_without_an_artifact_store_large_requests_are_sampled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with caplog.at_level(logging.WARNING, logger="opsloop.serve"):
        sink = StorePredictionSink(store, "d", policy=PredictionLogSection())
    assert "no artifact store" in caplog.text
    sink.write_batch([_record(5_000)])
    (row,) = store.predictions.read()
    assert row.chunk is None and row.outputs["log"]["policy"] == "sample"
    assert len(row.outputs["values"]) == 1_000
    store.close()


def test_opsloop_serve_logs_by_the_projects_declared_policy(project: Project) -> None:
    (project.dir / "opsloop.yaml").write_text(
        "project: demo\n"
        "monitoring:\n"
        "  prediction_log: {max_inline_rows: 10, large_requests: drop}\n"
    )
    declared = open_project(project.dir)
    set_current_project(declared)
    try:
        sink = _sink(None, "web", feedback=False)
        assert isinstance(sink, StorePredictionSink)
        assert (sink.large, sink.policy.max_inline_rows) == ("drop", 10)
        assert sink.artifacts is declared.artifacts and sink.deployment == "web"
        sink.write_batch([_record(11)])
        (row,) = declared.store.predictions.read()
        assert row.outputs["log"]["policy"] == "drop" and row.rows == 11
    finally:
        declared.close()


def _wait_for_predictions(store: Store, deployment: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(store.predictions.read(deployment=deployment)) < n:
        assert time.monotonic() < deadline, "predictions did not reach the store"
        time.sleep(0.05)


def test_labels_for_requests_the_store_logged_survive_a_restart_once(store_url: str) -> None:
    store = open_store(store_url)

    def config(recent: int) -> ServerConfig:
        return ServerConfig(
            models=[churn_model("1")],
            port=0,
            prediction_sink=StorePredictionSink(store, "churn-prod"),
            feedback_sink=StoreFeedbackSink(store, "churn-prod"),
            recent_requests=recent,
            log_flush_interval_s=0.01,
        )

    df, _ = churn_frame(8)
    rows = df.to_dict(orient="records")
    with run_server(config(recent=4)) as running, httpx.Client(base_url=running.url) as client:
        ids = [
            client.post("/invocations", json={"dataframe_records": [row]}).headers["x-request-id"]
            for row in rows
        ]
        _wait_for_predictions(store, "churn-prod", len(ids))
        # ids[0] is no longer remembered by the server: the store knows it.
        first = client.post("/v1/feedback", json={"request_id": ids[0], "label": 1})
        assert first.json() == {"accepted": 1}
        bad = client.post("/v1/feedback", json={"request_id": ids[1], "label": 5})
        assert bad.status_code == 400 and "not a class" in bad.json()["error"]
        assert client.post("/v1/feedback", json={"request_id": ids[0], "label": 0}).status_code == (
            409
        )
    # A new server (a restart) remembers nothing; the store still refuses a second label.
    with run_server(config(recent=100)) as running, httpx.Client(base_url=running.url) as client:
        again = client.post("/v1/feedback", json={"request_id": ids[0], "label": 0})
        assert again.status_code == 409
        assert f"'{ids[0]}' has a label already" in again.json()["error"]
        assert client.post("/v1/feedback", json={"request_id": ids[1], "label": 0}).json() == {
            "accepted": 1
        }
        unknown = client.post("/v1/feedback", json={"request_id": "f" * 32, "label": 0})
        assert unknown.status_code == 404
    labels = store.predictions.read_feedback(deployment="churn-prod")
    assert sorted((f.request_id, f.label["value"]) for f in labels) == sorted(
        [(ids[0], 1), (ids[1], 0)]
    )
    store.close()


def test_the_store_keeps_one_label_per_request_of_a_deployment(store_url: str) -> None:
    store = open_store(store_url)
    sink = StoreFeedbackSink(store, "web")
    now = datetime.now(UTC)
    first = [FeedbackRecord("r1", 1, now), FeedbackRecord("r2", 0, now)]
    sink.write_batch(first)
    # A second label (from another replica, say) is refused; the first stands.
    sink.write_batch([FeedbackRecord("r1", 0, now), FeedbackRecord("r3", 1, now)])
    assert store.predictions.log_feedback(
        [
            {"request_id": "r4", "deployment": "web", "label": {"value": 1}},
            {"request_id": "r4", "deployment": "web", "label": {"value": 0}},
            {"request_id": "r4", "deployment": "other", "label": {"value": 0}},
        ]
    ) == ["r4"]
    got = {
        (f.request_id, f.deployment): f.label["value"] for f in store.predictions.read_feedback()
    }
    assert got == {
        ("r1", "web"): 1,
        ("r2", "web"): 0,
        ("r3", "web"): 1,
        ("r4", "web"): 1,
        ("r4", "other"): 0,
    }
    assert sink.lookup(["r1", "zz"]) == {"r1": FeedbackTarget("", "", 0, True)}
    store.close()
