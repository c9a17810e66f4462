"""The endpoints the dashboard reads besides the others: a downsampled metric history, a
pipeline run's steps, the audit chain's verification, and the newest events first."""

from __future__ import annotations

import httpx

from opsloop.api.v1.runs import downsample
from tests.api.conftest import Populated, is_problem


def test_downsample_keeps_each_stretchs_extremes() -> None:
    points = [(i, float(i % 100)) for i in range(10_000)]
    points[5_555] = (5_555, 1e6)  # a spike a stride would miss
    out = downsample(points, 200)
    assert len(out) <= 200
    assert (5_555, 1e6) in out
    assert [s for s, _ in out] == sorted(s for s, _ in out)
    assert downsample(points[:50], 200) == points[:50]


def test_metric_history_max_points(client: httpx.Client, populated: Populated) -> None:
    run = populated.runs[0]
    store = populated.project.store
    store.runs.log_metric_points(run, [("wave", float(i % 7), i, 0) for i in range(5000)])
    got = client.get(f"/api/v1/runs/{run}/metrics/wave", params={"max_points": 100})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["next_cursor"] is None and 2 < len(body["items"]) <= 100
    assert {p["value"] for p in body["items"]} == {0.0, 6.0}
    is_problem(client.get(f"/api/v1/runs/{run}/metrics/wave", params={"max_points": 1}), 422)


def test_steps_verify_and_newest_events(client: httpx.Client, populated: Populated) -> None:
    assert client.get(f"/api/v1/runs/{populated.runs[0]}/steps").json() == []
    is_problem(client.get("/api/v1/runs/nope/steps"), 404)
    verified = client.get("/api/v1/events/verify").json()
    assert verified["reason"] is None and verified["entries"] > 0
    newest = client.get("/api/v1/events", params={"newest_first": True, "limit": 3}).json()
    ids = [e["id"] for e in newest["items"]]
    assert ids == sorted(ids, reverse=True)
    second = client.get(
        "/api/v1/events", params={"newest_first": True, "limit": 3, "cursor": newest["next_cursor"]}
    ).json()
    assert max(e["id"] for e in second["items"]) < min(ids)
