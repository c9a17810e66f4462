"""Feedback labels: only for answered requests, once each, fitting the model; remembered ids
are bounded; clients are rate-limited; request ids are unguessable."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from opsloop.errors import InvalidRequestError
from opsloop.serve import JsonlSink, ServerConfig, ServerState, read_jsonl
from opsloop.serve.feedback import LABELLED, ClientRateLimiter, LabelSpec, RecentRequests
from tests.serve.conftest import run_server
from tests.serve.models import churn_model, numeric_model, regressor_model

ROW = {"age": 30, "income": 61.5, "city": "paris", "member": True}


# -- label specs ----------------------------------------------------------------------------


def test_a_classifier_takes_its_classes_only() -> None:
    spec = LabelSpec.for_model(churn_model(), [-1, 2])
    assert spec.classes == (0, 1)
    for good in (0, 1, 1.0, np.int64(1)):
        spec.check(good, 1)
    spec.check([0, 1, 1], 3)
    for bad, words in [
        (2, "2 is not a class of model 'churn' version '1'; its classes are [0, 1]"),
        (True, "True is not a class"),
        ("1", "'1' is not a class"),
        ({"x": [1, 1, 1, 1, 1]}, "{'x': [1, 1, 1, 1, 1]} is not a class"),
        (None, "None is not a class"),
    ]:
        with pytest.raises(InvalidRequestError, match=re.escape(words)) as info:
            spec.check(bad, 1, "[4]")
        assert info.value.field == "label[4]"
        assert info.value.message.startswith("feedback[4].label: ")


def test_rows_decide_between_one_label_and_a_list() -> None:
    spec = LabelSpec.for_model(churn_model(), [-1, 2])
    with pytest.raises(InvalidRequestError, match="had 3 rows; send a list of 3 labels"):
        spec.check(1, 3)
    with pytest.raises(InvalidRequestError, match="2 labels for a request of 3 row"):
        spec.check([1, 0], 3)
    with pytest.raises(InvalidRequestError, match="7 is not a class"):
        spec.check([1, 7, 0], 3)


def test_a_regressor_takes_finite_numbers_and_an_unknown_version_any_scalar() -> None:
    spec = LabelSpec.for_model(regressor_model(), [-1])
    assert spec.classes is None and spec.outputs is None
    spec.check(3.5, 1)
    spec.check(-2, 1)
    spec.check([1.0], 1)
    for bad in ("3.5", True, None, [[1.0]], float("nan"), float("inf"), {"v": 1}):
        with pytest.raises(InvalidRequestError, match="predicts numbers; expected a finite"):
            spec.check(bad, 1)
    loose = LabelSpec.unknown("old", "7")
    for good in (1, "yes", 2.5, False):
        loose.check(good, 1)
    with pytest.raises(InvalidRequestError, match="expected a class or a finite number"):
        loose.check({"x": 1}, 1)


def test_a_model_without_classes_takes_output_column_indexes() -> None:
    class Bare:
        name, version, signature = "bare", "1", numeric_model().signature

        def predict(self, df: object) -> object:  # pragma: no cover - never called
            raise AssertionError

    spec = LabelSpec.for_model(Bare(), [-1, 3])  # type: ignore[arg-type]
    spec.check(2, 1)
    with pytest.raises(InvalidRequestError, match="3 is not an output column"):
        spec.check(3, 1)
    with pytest.raises(InvalidRequestError, match="expected the index of an output column"):
        spec.check(1.0, 1)


# -- remembered ids and rate limits ---------------------------------------------------------


def test_recent_requests_are_bounded_and_oldest_go_first() -> None:
    spec = LabelSpec.for_model(churn_model(), [-1, 2])
    recent = RecentRequests(1000)
    for i in range(10_000):
        recent.add(f"r{i}", (spec, 1))
        assert len(recent) <= 1000
    assert recent.get("r0") is None
    assert recent.get("r9999") == (spec, 1)
    recent.mark_labelled("r9999")
    assert recent.get("r9999") is LABELLED
    # Marking an id remembered in the older generation moves it, it is not found twice.
    recent.mark_labelled("r9500")
    assert recent.get("r9500") is LABELLED


def test_rate_limiter_buckets_per_client() -> None:
    limiter = ClientRateLimiter(rate=10.0, burst=20.0, max_clients=100)
    assert limiter.take("a", 20, now=0.0) == 0.0
    assert limiter.take("a", 1, now=0.0) == pytest.approx(0.1)
    assert limiter.take("b", 5, now=0.0) == 0.0  # other clients have buckets of their own
    assert limiter.take("a", 5, now=0.5) == 0.0
    assert limiter.take("a", 5, now=0.5) == pytest.approx(0.5)
    for i in range(1000):  # many addresses cannot grow the table without end
        limiter.take(f"c{i}", 1, now=1.0 + i)
    assert len(limiter._buckets) <= 100


# -- the server -----------------------------------------------------------------------------


def _server(tmp_path: Path, **options: object) -> ServerConfig:
    return ServerConfig(
        models=[churn_model(), regressor_model()],
        port=0,
        feedback_sink=JsonlSink(tmp_path / "labels.jsonl"),
        log_flush_interval_s=0.01,
        **options,
    )


def _answer(client: httpx.Client, rows: int = 1) -> str:
    resp = client.post("/invocations?model=churn", json={"dataframe_records": [ROW] * rows})
    assert resp.status_code == 200, resp.text
    return resp.headers["x-request-id"]


def test_labels_only_for_answered_requests_once_and_fitting(tmp_path: Path) -> None:
    with run_server(_server(tmp_path)) as running, httpx.Client(base_url=running.url) as client:
        rid = _answer(client)
        triple = _answer(client, rows=3)
        reg = client.post("/invocations?model=reg", json={"instances": [[1.0, 0.0]]})
        reg_id = reg.headers["x-request-id"]

        def post(body: object) -> httpx.Response:
            return client.post("/v1/feedback", json=body)

        unknown = post({"request_id": "0" * 32, "label": 1})
        assert unknown.status_code == 404
        assert unknown.json()["field"] == "request_id"
        assert f"no request '{'0' * 32}' was answered here" in unknown.json()["error"]
        bad = post({"request_id": rid, "label": {"x": [1, 1, 1, 1, 1]}})
        assert bad.status_code == 400 and bad.json()["field"] == "label"
        assert post({"request_id": rid, "label": 1, "model": "reg"}).json()["field"] == "model"
        assert post({"request_id": triple, "label": 1}).status_code == 400
        assert post({"request_id": reg_id, "label": "high"}).status_code == 400
        twice = post([{"request_id": rid, "label": 1}, {"request_id": rid, "label": 0}])
        assert twice.status_code == 409 and twice.json()["field"] == "request_id[1]"
        # All or nothing: the good first item of a refused request was not taken.
        assert post([{"request_id": rid, "label": 1}, {"request_id": "nope", "label": 0}]).json()[
            "field"
        ] == ("request_id[1]")
        ok = post(
            [
                {"request_id": rid, "label": 1},
                {"request_id": triple, "label": [0, 1, 1]},
                {"request_id": reg_id, "label": 2.5},
            ]
        )
        assert ok.json() == {"accepted": 3}
        again = post({"request_id": rid, "label": 0})
        assert again.status_code == 409
        assert again.json()["error"] == f"feedback.request_id: request '{rid}' has a label already"
    # The server flushed its feedback log when it stopped.
    labels = read_jsonl(tmp_path / "labels.jsonl")
    assert [(r["request_id"], r["label"], r["model"]) for r in labels] == [
        (rid, 1, "churn"),
        (triple, [0, 1, 1], "churn"),
        (reg_id, 2.5, "reg"),
    ]


def test_too_many_labels_are_refused_and_clients_rate_limited(tmp_path: Path) -> None:
    config = _server(tmp_path, feedback_rate=50.0, feedback_burst=10, max_feedback_labels=10)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        ids = [_answer(client) for _ in range(12)]
        huge = client.post("/v1/feedback", json=[{"request_id": i, "label": 1} for i in ids * 2])
        assert huge.status_code == 413 and "at most 10" in huge.json()["error"]
        burst = client.post("/v1/feedback", json=[{"request_id": i, "label": 1} for i in ids[:10]])
        assert burst.json() == {"accepted": 10}
        limited = client.post("/v1/feedback", json={"request_id": ids[10], "label": 1})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        time.sleep(0.1)  # 50 labels a second: one is back after 20 ms
        assert client.post("/v1/feedback", json={"request_id": ids[10], "label": 1}).json() == {
            "accepted": 1
        }


def test_forgotten_ids_are_refused_without_a_sink_that_knows_them(tmp_path: Path) -> None:
    with (
        run_server(_server(tmp_path, recent_requests=10)) as running,
        httpx.Client(base_url=running.url) as client,
    ):
        ids = [_answer(client) for _ in range(30)]
        assert client.post("/v1/feedback", json={"request_id": ids[0], "label": 1}).status_code == (
            404
        )
        assert client.post("/v1/feedback", json={"request_id": ids[-1], "label": 1}).json() == {
            "accepted": 1
        }


def test_generated_request_ids_are_128_random_bits(tmp_path: Path) -> None:
    state = ServerState(ServerConfig(models=[churn_model()]))
    ids = [state.new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # No shared prefix and no counter: every hex digit takes all 16 values somewhere.
    for position in (0, 1, 15, 30, 31):
        assert len({i[position] for i in ids}) == 16
    state.executor.shutdown()
