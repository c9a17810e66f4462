"""/api/v1/runs: list, search, order, one run, params, metric history, artifacts."""

from __future__ import annotations

import httpx

from tests.api.conftest import Populated, is_problem


def test_list_runs_newest_first(client: httpx.Client, populated: Populated) -> None:
    body = client.get("/api/v1/runs").json()
    assert [r["id"] for r in body["items"]] == populated.runs[::-1]
    assert body["next_cursor"] is None
    first = body["items"][-1]
    assert first["params"] == {"lr": "0.1", "model": "logreg"}
    assert first["metrics"]["loss"] == 1 / 3 and first["tags"]["team"] == "churn"


def test_search_filters_and_orders(client: httpx.Client, populated: Populated) -> None:
    def ids(**params: object) -> list[str]:
        r = client.get("/api/v1/runs", params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    a, b = populated.runs
    assert ids(filter="metrics.accuracy>=0.85") == [b]
    assert ids(filter="params.lr=0.1") == [a]
    assert ids(filter=["tags.team~ch", "status=finished"]) == [a]
    assert ids(filter="params.missing!=x") == [b, a]
    assert ids(order_by="metrics.accuracy") == [a, b]
    assert ids(order_by="-metrics.accuracy") == [b, a]
    assert ids(order_by="name") == [a, b]
    assert ids(name="train-1") == [b]
    assert ids(kind="pipeline") == []


def test_bad_filter_and_order_are_problems(client: httpx.Client) -> None:
    body = is_problem(client.get("/api/v1/runs", params={"filter": "accuracy"}), 422)
    assert "FIELD OP VALUE" in body["detail"]
    body = is_problem(client.get("/api/v1/runs", params={"order_by": "colour"}), 422)
    assert "unknown field 'colour'" in body["detail"]


def test_one_run_params_and_metric_history(client: httpx.Client, populated: Populated) -> None:
    run_id = populated.runs[0]
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["name"] == "train-0" and run["status"] == "finished"
    assert client.get(f"/api/v1/runs/{run_id}/params").json() == {"lr": "0.1", "model": "logreg"}
    history = client.get(f"/api/v1/runs/{run_id}/metrics/loss").json()
    assert [(p["step"], p["value"]) for p in history["items"]] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    paged = client.get(f"/api/v1/runs/{run_id}/metrics/loss", params={"limit": 2}).json()
    rest = client.get(
        f"/api/v1/runs/{run_id}/metrics/loss", params={"limit": 2, "cursor": paged["next_cursor"]}
    ).json()
    assert [p["step"] for p in paged["items"] + rest["items"]] == [0, 1, 2]
    assert rest["next_cursor"] is None
    body = is_problem(client.get("/api/v1/runs/nope"), 404)
    assert body["detail"] == "run nope does not exist" and body["instance"] == "/api/v1/runs/nope"


def test_artifacts_listed_and_downloaded(client: httpx.Client, populated: Populated) -> None:
    run_id = populated.runs[0]
    listed = client.get(f"/api/v1/runs/{run_id}/artifacts").json()
    assert [(a["path"], a["kind"]) for a in listed] == [("notes.txt", "file"), ("plots", "dir")]
    got = client.get(f"/api/v1/runs/{run_id}/artifacts/notes.txt")
    assert got.status_code == 200 and got.content == b"hello artifact\n"
    assert got.headers["content-type"] == "application/octet-stream"
    assert "notes.txt" in got.headers["content-disposition"]
    inner = client.get(f"/api/v1/runs/{run_id}/artifacts/plots", params={"file": "sub/b.txt"})
    assert inner.status_code == 200 and inner.content == b"B"
    body = is_problem(client.get(f"/api/v1/runs/{run_id}/artifacts/plots"), 404)
    assert "is a folder" in body["detail"] and "a.txt" in body["hint"]
    is_problem(client.get(f"/api/v1/runs/{run_id}/artifacts/missing.bin"), 404)
    is_problem(client.get(f"/api/v1/runs/{run_id}/artifacts/plots", params={"file": "../x"}), 404)
