"""Feedback poisoning against a real server process: guessed request ids, labels that do not
fit the model, overwrites and floods are all refused; only the honest label is kept."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from opsloop.serve import read_jsonl
from tests.serve.conftest import server_process

BODY = {"dataframe_records": [{"age": 30, "income": 61.5, "city": "paris", "member": True}]}


def _neighbours(request_id: str) -> set[str]:
    """Ids next to a seen one, as a counter-based generator would have issued them."""
    value = int(request_id, 16)
    width = len(request_id)
    return {format(value + d, f"0{width}x") for d in (-2, -1, 1, 2)}


def test_poisoned_labels_never_reach_the_log(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    args = ("--feedback", str(labels), "--log-flush", "0.01")
    with server_process(*args) as (_, url), httpx.Client(base_url=url, timeout=30) as client:
        ids = [client.post("/invocations", json=BODY).headers["x-request-id"] for _ in range(20)]
        guesses = sorted(set().union(*map(_neighbours, ids)) - set(ids))
        for guess in guesses[:50]:
            r = client.post("/v1/feedback", json={"request_id": guess, "label": 1})
            assert r.status_code == 404, (guess, r.text)

        # The review's payload: 50,000 labels, shaped like no class of the model.
        flood = [{"request_id": ids[i % 20], "label": {"x": [1] * 5}} for i in range(50_000)]
        assert client.post("/v1/feedback", json=flood).status_code == 413
        shaped = client.post("/v1/feedback", json={"request_id": ids[0], "label": {"x": [1] * 5}})
        assert shaped.status_code == 400 and shaped.json()["field"] == "label"
        for bad in (7, "1", True, None, [1, 0]):
            r = client.post("/v1/feedback", json={"request_id": ids[0], "label": bad})
            assert r.status_code == 400, bad

        assert client.post("/v1/feedback", json={"request_id": ids[0], "label": 1}).json() == {
            "accepted": 1
        }
        for overwrite in (0, 1):
            r = client.post("/v1/feedback", json={"request_id": ids[0], "label": overwrite})
            assert r.status_code == 409 and ids[0] in r.json()["error"]
        # The process is killed at the end: wait for the log's writer (every 10 ms) first.
        deadline = time.monotonic() + 10
        while not labels.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
    assert [(r["request_id"], r["label"]) for r in read_jsonl(labels)] == [(ids[0], 1)]


def test_a_label_flood_is_rate_limited_per_client(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    # A refill of one label per 20 s: a slow, busy machine cannot refill the bucket mid-test.
    args = ("--feedback", str(labels), "--feedback-rate", "0.05", "--feedback-burst", "40")
    args += ("--max-feedback-labels", "40")
    with server_process(*args) as (_, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            statuses = [
                client.post("/v1/feedback", json={"request_id": f"x{i}", "label": 1}).status_code
                for i in range(60)
            ]
            assert statuses[:40] == [404] * 40
            assert set(statuses[40:]) == {429}
            limited = client.post("/v1/feedback", json={"request_id": "x", "label": 1})
            assert int(limited.headers["retry-after"]) >= 1
        # Another client address has a bucket of its own.
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, transport=other, timeout=30) as client:
            assert client.post(
                "/v1/feedback", json={"request_id": "y", "label": 1}
            ).status_code == (404)
