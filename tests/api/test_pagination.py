"""Cursors: every item exactly once across pages, forged or foreign cursors refused, limits
bounded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from opsloop.api import create_app
from opsloop.api.pagination import CursorCodec, sort_value
from opsloop.context import Project, open_project
from tests.api.conftest import Populated, is_problem, running


def _all_pages(client: httpx.Client, path: str, **params: object) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= int(str(params.get("limit", 100)))
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


@pytest.fixture
def many_runs(populated: Populated) -> list[str]:
    store = populated.project.store
    ids = [store.runs.create(name=f"r{i % 4}", project="demo").id for i in range(23)]
    for n, run_id in enumerate(ids):
        store.runs.log_metric_points(run_id, [("score", float(n % 5), 0, 0)])
    return ids + populated.runs


def test_cursors_page_through_every_run_exactly_once(
    client: httpx.Client, many_runs: list[str]
) -> None:
    for params in ({}, {"order_by": "name"}, {"order_by": "-metrics.score"}):
        seen = _all_pages(client, "/api/v1/runs", limit=4, **params)
        ids = [str(r["id"]) for r in seen]
        assert sorted(ids) == sorted(many_runs), params
        whole = client.get("/api/v1/runs", params={"limit": 1000, **params}).json()["items"]
        assert ids == [r["id"] for r in whole], params


def test_a_run_written_between_pages_shifts_nothing(
    client: httpx.Client, populated: Populated, many_runs: list[str]
) -> None:
    first = client.get("/api/v1/runs", params={"limit": 5, "order_by": "started_at"}).json()
    new = populated.project.store.runs.create(name="late", project="demo").id
    rest = _all_pages(
        client, "/api/v1/runs", limit=5, order_by="started_at", cursor=first["next_cursor"]
    )
    ids = [r["id"] for r in first["items"]] + [r["id"] for r in rest]
    assert len(ids) == len(set(ids)) == len(many_runs) + 1 and ids[-1] == new


def test_events_and_versions_page_too(client: httpx.Client, populated: Populated) -> None:
    events = _all_pages(client, "/api/v1/events", limit=3)
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    assert len(events) == len(populated.project.store.events.list())
    versions = _all_pages(client, "/api/v1/models/churn/versions", limit=1)
    assert [v["version"] for v in versions] == [2, 1]


def test_forged_garbage_and_foreign_cursors_are_400(
    client: httpx.Client, many_runs: list[str]
) -> None:
    good = client.get("/api/v1/runs", params={"limit": 2}).json()["next_cursor"]
    assert good
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    payload = json.loads(raw[16:])
    payload["k"][0][1] = 0.0  # move the cursor: the signature no longer matches
    forged = base64.urlsafe_b64encode(raw[:16] + json.dumps(payload).encode()).decode()
    for cursor in (forged, "garbage!", "", "AAAA", good[:-3]):
        if cursor:
            body = is_problem(client.get("/api/v1/runs", params={"cursor": cursor}), 400)
            assert "cursor" in body["detail"]
    # A cursor of one query does not serve another (other filters, other list).
    is_problem(client.get("/api/v1/runs", params={"cursor": good, "kind": "run"}), 400)
    is_problem(client.get("/api/v1/events", params={"cursor": good}), 400)


def test_limit_is_bounded(client: httpx.Client) -> None:
    for limit in (0, 1001, -1):
        body = is_problem(client.get("/api/v1/runs", params={"limit": limit}), 422)
        assert body["errors"][0]["field"] == "query.limit"
    assert client.get("/api/v1/runs", params={"limit": 1000}).status_code == 200


def test_codec_round_trip_and_other_key(project: Project) -> None:
    codec = CursorCodec(b"k" * 32)
    key = [sort_value(1.5), sort_value("x"), sort_value(None)]
    assert codec.decode("s", codec.encode("s", key)) == key
    with pytest.raises(Exception, match="400"):
        CursorCodec(b"other" * 8).decode("s", codec.encode("s", key))


def test_cursors_over_postgresql(
    pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_STORE_URL", pg_database_url)
    (tmp_path / "opsloop.yaml").write_text("project: pg\n")
    proj = open_project(tmp_path)
    try:
        store = proj.store
        ids = [store.runs.create(name=f"r{i % 3}", project="pg").id for i in range(11)]
        with running(create_app(proj)) as url, httpx.Client(base_url=url) as c:
            for order in ("-started_at", "name"):
                seen = _all_pages(c, "/api/v1/runs", limit=3, order_by=order)
                assert sorted(str(r["id"]) for r in seen) == sorted(ids)
                assert len(seen) == len(ids)
            events = _all_pages(c, "/api/v1/events", limit=4)
            assert len(events) == len({e["id"] for e in events}) == len(store.events.list())
    finally:
        proj.close()
