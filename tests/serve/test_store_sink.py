"""Predictions and feedback reach the metadata store, where the monitors read them; the
store holds one label per request and tells the server which requests it logged."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from opsloop.serve import FeedbackRecord, FeedbackTarget, ServerConfig
from opsloop.serve.store_sink import StoreFeedbackSink, StorePredictionSink
from opsloop.store import Store, open_store
from tests.serve.conftest import run_server
from tests.serve.models import churn_frame, churn_model


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
        while time.monotonic() < deadline and len(store.read_predictions()) < len(ids):
            time.sleep(0.1)
    logged = store.read_predictions(deployment="churn-prod")
    assert [p.request_id for p in logged] == ids
    first = logged[0]
    assert first.model_name == "churn" and first.model_version == "1"
    assert set(first.inputs) == set(df.columns)
    assert len(first.outputs["values"]) == 1
    labels = store.read_feedback(request_ids=[ids[0]])
    assert [f.label for f in labels] == [{"value": 1}]
    store.close()


def _wait_for_predictions(store: Store, deployment: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(store.read_predictions(deployment=deployment)) < n:
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
    labels = store.read_feedback(deployment="churn-prod")
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
    assert store.log_feedback(
        [
            {"request_id": "r4", "deployment": "web", "label": {"value": 1}},
            {"request_id": "r4", "deployment": "web", "label": {"value": 0}},
            {"request_id": "r4", "deployment": "other", "label": {"value": 0}},
        ]
    ) == ["r4"]
    got = {(f.request_id, f.deployment): f.label["value"] for f in store.read_feedback()}
    assert got == {
        ("r1", "web"): 1,
        ("r2", "web"): 0,
        ("r3", "web"): 1,
        ("r4", "web"): 1,
        ("r4", "other"): 0,
    }
    assert sink.lookup(["r1", "zz"]) == {"r1": FeedbackTarget("", "", 0, True)}
    store.close()
