"""MLflow's wire format as the server speaks it: errors, fields, paths, search syntax."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsloop.api.mlflow.artifacts import children, parse_artifact_path
from opsloop.api.mlflow.protocol import MlflowError
from opsloop.api.mlflow.search import matches, parse_filter, parse_order_by, sort_rows
from opsloop.store.types import ArtifactInfo
from tests.api.mlflow_server import Running, project_at, run_server

P = "/api/2.0/mlflow"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    project = project_at(tmp_path / "proj", f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with run_server(project) as running:
            yield running
    finally:
        project.close()


def test_errors_have_mlflows_shape_and_status(server: Running) -> None:
    with httpx.Client(base_url=server.url) as http:
        resp = http.get(f"{P}/runs/get", params={"run_id": "f" * 32})
        assert resp.status_code == 404
        assert resp.json() == {
            "error_code": "RESOURCE_DOES_NOT_EXIST",
            "message": resp.json()["message"],
        }
        assert "ffff" in resp.json()["message"]
        resp = http.get(f"{P}/runs/get")
        assert (resp.status_code, resp.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
        assert "run_id" in resp.json()["message"]
        resp = http.post(f"{P}/runs/create", content=b"{not json", headers={"content-type": "x"})
        assert (resp.status_code, resp.json()["error_code"]) == (400, "MALFORMED_REQUEST")
        run_id = http.post(f"{P}/runs/create", json={}).json()["run"]["info"]["run_id"]
        resp = http.post(f"{P}/runs/log-metric", json={"run_id": run_id, "key": "m", "value": "x"})
        assert resp.status_code == 400 and "metric 'm' value" in resp.json()["message"]
        resp = http.post(f"{P}/runs/set-tag", json={"run_id": run_id, "key": "opsloop.mlflow.x"})
        assert resp.status_code == 400, "the server's own tags are not the client's to set"
        resp = http.post(f"{P}/runs/search", json={"filter": "metrics.acc >> 1"})
        assert resp.status_code == 400 and "metrics.acc >> 1" in resp.json()["message"]


def test_metric_values_as_protobuf_writes_them(server: Running) -> None:
    with httpx.Client(base_url=server.url) as http:
        run_id = http.post(f"{P}/runs/create", json={}).json()["run"]["info"]["run_id"]
        metrics = [
            {"key": "m", "value": v, "timestamp": "1700000000000", "step": str(i)}
            for i, v in enumerate([1.5, "NaN", "Infinity", "-Infinity", 2])
        ]
        assert http.post(
            f"{P}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}
        ).is_success
        history = http.get(
            f"{P}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
        ).json()["metrics"]
    assert [p["value"] for p in history] == [1.5, "NaN", "Infinity", "-Infinity", 2.0]
    assert [p["step"] for p in history] == [0, 1, 2, 3, 4]
    assert {p["timestamp"] for p in history} == {1700000000000}


def test_pages_of_search_results(server: Running) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(5):
            http.post(f"{P}/runs/create", json={})
        seen: list[str] = []
        token = None
        while True:
            body: dict[str, Any] = {"experiment_ids": ["0"], "max_results": 2}
            if token:
                body["page_token"] = token
            page = http.post(f"{P}/runs/search", json=body).json()
            seen += [r["info"]["run_id"] for r in page["runs"]]
            token = page.get("next_page_token")
            if not token:
                break
    assert len(seen) == len(set(seen)) == 5


def test_routes_stay_out_of_opsloops_openapi(server: Running) -> None:
    paths = httpx.get(f"{server.url}/api/v1/openapi.json").json().get("paths", {})
    assert not [p for p in paths if "mlflow" in p]


def test_artifact_paths() -> None:
    run = parse_artifact_path("0/abc/artifacts/model/MLmodel")
    assert (run.run_id, run.rel, run.logged_model) == ("abc", "model/MLmodel", False)
    model = parse_artifact_path("7/models/m-def/artifacts/MLmodel")
    assert (model.run_id, model.rel, model.logged_model) == ("def", "MLmodel", True)
    assert parse_artifact_path("0/abc/artifacts").rel == ""
    for bad in ("0/abc/artifacts/../../x", "0/abc", "x"):
        with pytest.raises(MlflowError):
            parse_artifact_path(bad)


def test_listing_children() -> None:
    def art(path: str, size: int = 1) -> ArtifactInfo:
        return ArtifactInfo(
            run_id="r", path=path, digest="d", size=size, kind="file", created_at="2026-01-01"
        )

    arts = [art("a.txt", 3), art("d/b.txt"), art("d/e/c.txt"), art("dd.txt")]
    assert children(arts, "") == [
        {"path": "a.txt", "is_dir": False, "file_size": 3},
        {"path": "d", "is_dir": True},
        {"path": "dd.txt", "is_dir": False, "file_size": 1},
    ]
    assert [c["path"] for c in children(arts, "d")] == ["b.txt", "e"]
    assert children(arts, "a.txt") == []


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("metrics.acc > 0.5", {("metrics", "acc"): 0.7}, True),
        ("metrics.acc > 0.5", {("metrics", "acc"): 0.3}, False),
        ("metrics.acc > 0.5", {}, False),
        ("params.lr = '0.1'", {("params", "lr"): "0.1"}, True),
        ('params.`my key` != "x"', {("params", "my key"): "y"}, True),
        ("tags.team LIKE 'gro%'", {("tags", "team"): "growth"}, True),
        ("tags.team LIKE 'GRO%'", {("tags", "team"): "growth"}, False),
        ("tags.team ILIKE 'GRO%'", {("tags", "team"): "growth"}, True),
        ("attributes.status IN ('FINISHED', 'FAILED')", {("attributes", "status"): "FAILED"}, True),
        ("status NOT IN ('FINISHED')", {("attributes", "status"): "FINISHED"}, False),
        (
            "metrics.a >= 1 and params.b = 'x' AND tags.c = 'y'",
            {("metrics", "a"): 1.0, ("params", "b"): "x", ("tags", "c"): "y"},
            True,
        ),
        ("name = 'churn'", {("attributes", "name"): "churn"}, True),
    ],
)
def test_filters(text: str, row: dict[tuple[str, str], Any], expected: bool) -> None:
    assert matches(parse_filter(text), lambda e, k: row.get((e, k))) is expected


@pytest.mark.parametrize(
    "bad", ["metrics.acc", "metrics.acc = 'high'", "foo.bar = 1", "status IN 'x'"]
)
def test_bad_filters_name_the_clause(bad: str) -> None:
    with pytest.raises(MlflowError, match=r"filter|IN|number"):
        parse_filter(bad)


def test_order_by_puts_missing_values_last() -> None:
    rows = [{"acc": 0.5, "n": "b"}, {"n": "a"}, {"acc": 0.9, "n": "c"}, {"acc": 0.5, "n": "a"}]
    order = parse_order_by(["metrics.acc DESC", "n"])
    assert order == [("metrics", "acc", False), ("attributes", "n", True)]
    got = sort_rows(rows, order, lambda r: lambda e, k: r.get(k))
    assert [r["n"] for r in got] == ["c", "a", "b", "a"]
    assert [r.get("acc") for r in got] == [0.9, 0.5, 0.5, None]


def test_an_endpoint_not_answered_says_so_in_mlflows_terms(server: Running) -> None:
    for method, path in [
        ("GET", "/api/3.0/mlflow/server-info"),
        ("POST", f"{P}/traces"),
        ("DELETE", "/api/2.0/mlflow-artifacts/mpu/abort/x"),
        ("GET", f"{P}/runs/log-batch"),  # a POST endpoint
    ]:
        resp = httpx.request(method, f"{server.url}{path}")
        assert resp.status_code == 404, path
        assert resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        assert path in resp.json()["message"]


def test_artifact_paths_cannot_climb_out(server: Running) -> None:
    with httpx.Client(base_url=server.url) as http:
        run_id = http.post(f"{P}/runs/create", json={}).json()["run"]["info"]["run_id"]
        root = f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts"
        for evil in ("a/%2E%2E/%2E%2E/x", "%2E%2E/%2E%2E/%2E%2E/etc/passwd"):
            resp = http.put(f"{root}/{evil}", content=b"x")
            assert resp.status_code == 400, evil
            assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        other = http.post(f"{P}/runs/create", json={}).json()["run"]["info"]["run_id"]
        # A path names its run: a file lands there and nowhere else.
        assert http.put(f"{root}/ok.txt", content=b"mine").is_success
        resp = http.get(f"/api/2.0/mlflow-artifacts/artifacts/0/{other}/artifacts/ok.txt")
        assert resp.status_code == 404
    assert [a.path for a in server.project.store.runs.list_artifacts(run_id)] == ["ok.txt"]
