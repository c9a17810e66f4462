"""/api/v1/datasets (versions, lineage), /events (the audit log), /monitors and /series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.api.conftest import DIGEST, Populated, is_problem


def test_dataset_versions_and_lineage(client: httpx.Client, populated: Populated) -> None:
    store = populated.project.store
    other = "sha256:" + "cd" * 32
    store.datasets.record(other, source="data/fraud.csv", row_count=5, schema={}, name="fraud")
    listed = client.get("/api/v1/datasets").json()["items"]
    assert [d["digest"] for d in listed] == [other, DIGEST]
    churn = client.get("/api/v1/datasets", params={"name": "churn"}).json()["items"]
    assert [d["digest"] for d in churn] == [DIGEST]
    one = client.get(f"/api/v1/datasets/{DIGEST}").json()
    assert one["row_count"] == 60 and one["source"] == "data/churn.csv"
    lineage = client.get(f"/api/v1/datasets/{DIGEST}/lineage").json()
    assert [v["version"] for v in lineage["model_versions"]] == [1, 2]
    assert [r["id"] for r in lineage["runs"]] == [populated.model_run]
    assert client.get(f"/api/v1/datasets/{other}/lineage").json()["model_versions"] == []
    is_problem(client.get("/api/v1/datasets/sha256:" + "00" * 32), 404)
    is_problem(client.get("/api/v1/datasets/not-a-digest"), 422)


def test_events_filtered(client: httpx.Client, populated: Populated) -> None:
    all_events = client.get("/api/v1/events", params={"limit": 1000}).json()["items"]
    assert all_events and [e["id"] for e in all_events] == sorted(e["id"] for e in all_events)
    runs = client.get("/api/v1/events", params={"object_type": "run", "kind": "run.*"}).json()
    assert runs["items"] and all(e["kind"].startswith("run.") for e in runs["items"])
    one = client.get(
        "/api/v1/events", params={"object_id": populated.runs[1], "kind": "run.started"}
    ).json()["items"]
    assert len(one) == 1
    me = populated.project.settings.resolved_actor()
    assert client.get("/api/v1/events", params={"actor": "nobody"}).json()["items"] == []
    assert len(
        client.get("/api/v1/events", params={"actor": me, "limit": 1000}).json()["items"]
    ) == len(all_events)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert client.get("/api/v1/events", params={"since": later.isoformat()}).json()["items"] == []


def test_monitors_and_series(client: httpx.Client, populated: Populated) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    populated.project.store.series.append(
        [
            ("latency_p95", {"deployment": "churn-prod"}, t0 + timedelta(minutes=i), float(i))
            for i in range(5)
        ]
        + [("latency_p95", {"deployment": "other"}, t0, 9.0)]
    )
    [monitor] = client.get("/api/v1/monitors").json()
    assert monitor["deployment"] == "churn-prod" and monitor["model"] == "churn"
    assert monitor["series"] == 1
    series = client.get("/api/v1/series", params={"prefix": "latency"}).json()["items"]
    assert [s["labels"]["deployment"] for s in series] == ["churn-prod", "other"]
    points = client.get(
        "/api/v1/series/points",
        params={"name": "latency_p95", "label": "deployment=churn-prod", "last": 3},
    ).json()
    assert [p["value"] for p in points] == [2.0, 3.0, 4.0]
    both = client.get("/api/v1/series/points", params={"name": "latency_p95"}).json()
    assert len(both) == 6
    body = is_problem(
        client.get("/api/v1/series/points", params={"name": "x", "label": "nolabel"}), 422
    )
    assert "KEY=VALUE" in body["detail"]
