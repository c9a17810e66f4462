"""Predictions and feedback reach the metadata store, where the monitors read them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from opsloop.serve import ServerConfig
from opsloop.serve.store_sink import StoreFeedbackSink, StorePredictionSink
from opsloop.store import open_store
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
