"""OpenLineage events of pipeline runs: valid against the OpenLineage JSON schema, and received
whole by an HTTP receiver speaking Marquez's ``POST /api/v1/lineage``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from opsloop.context import Project, open_project, set_current_project
from opsloop.data import content_digest
from opsloop.pipeline import run_pipeline
from opsloop.pipeline.lineage import run_uuid

from . import lineage_steps_fixture as lf

SPEC_DIR = Path(__file__).parent / "openlineage_spec"
CORE = "urn:openlineage:core"
# The facet schemas name their base facets by the 1-0-2 document's $defs; they are the
# core document's BaseFacet.
BASE_102 = "https://openlineage.io/spec/1-0-2/OpenLineage.json"


def _validators() -> dict[str, Draft202012Validator]:
    def load(name: str) -> dict[str, Any]:
        return json.loads((SPEC_DIR / name).read_text())

    base = {"$ref": f"{CORE}#/definitions/BaseFacet"}
    shim = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"DatasetFacet": base, "InputDatasetFacet": base, "RunFacet": base},
    }
    facets = {
        "version": load("DatasetVersionDatasetFacet.json"),
        "quality": load("DataQualityAssertionsDatasetFacet.json"),
        "error": load("ErrorMessageRunFacet.json"),
    }
    registry: Registry[Any] = Registry().with_resources(
        [
            (CORE, Resource.from_contents(load("OpenLineage.json"))),
            (BASE_102, Resource.from_contents(shim)),
            *((f["$id"], Resource.from_contents(f)) for f in facets.values()),
        ]
    )
    checker = Draft202012Validator.FORMAT_CHECKER
    return {
        "event": Draft202012Validator({"$ref": CORE}, registry=registry, format_checker=checker),
        **{
            k: Draft202012Validator(f, registry=registry, format_checker=checker)
            for k, f in facets.items()
        },
    }


VALIDATORS = _validators()


def assert_valid(event: dict[str, Any]) -> None:
    """The event against the run event schema, and the facets it carries against theirs."""
    VALIDATORS["event"].validate(event)
    VALIDATORS["error"].validate(event["run"].get("facets", {}))
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        VALIDATORS["version"].validate(dataset.get("facets", {}))
        VALIDATORS["quality"].validate(dataset.get("inputFacets", {}))


class Receiver:
    """A lineage endpoint on 127.0.0.1: ``POST /api/v1/lineage`` answers 201 and keeps the
    event, as Marquez does; any other path is 404."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        events, paths = self.events, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                paths.append(self.path)
                if self.path != "/api/v1/lineage":
                    self.send_response(404)
                    self.end_headers()
                    return
                events.append(json.loads(body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _project(tmp_path: Path, lineage: str, monkeypatch: pytest.MonkeyPatch) -> Project:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text(f"project: shop\nlineage:\n{lineage}")
    monkeypatch.chdir(folder)
    proj = open_project(folder)
    set_current_project(proj)
    return proj


@pytest.fixture
def lineage_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> Iterator[Project]:
    proj = _project(
        tmp_path,
        "  transports:\n"
        f"    - type: http\n      url: {receiver.url}\n"
        "    - type: file\n      path: .opsloop/lineage.jsonl\n",
        monkeypatch,
    )
    yield proj
    proj.close()
    set_current_project(None)


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        out.setdefault(event["job"]["name"], []).append(event["eventType"])
    return out


def test_a_run_sends_start_and_complete_for_itself_and_every_step(
    lineage_project: Project, receiver: Receiver
) -> None:
    result = run_pipeline(lf.orders, {"rows": 12}, executor="inline", progress=False)
    assert result.succeeded, result.error

    events = receiver.events
    assert set(receiver.paths) == {"/api/v1/lineage"}
    for event in events:
        assert_valid(event)
    assert _by_job(events) == {
        "orders": ["START", "COMPLETE"],
        **{f"orders.{s}": ["START", "COMPLETE"] for s in result.steps},
    }
    assert {e["job"]["namespace"] for e in events} == {"shop"}

    # Step runs are children of the pipeline run, with ids derived from the store's.
    root = run_uuid(result.run_id)
    assert events[0]["run"]["runId"] == root
    step_events = [e for e in events if e["job"]["name"] != "orders"]
    assert all(e["run"]["facets"]["parent"]["run"]["runId"] == root for e in step_events)

    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    # load: its output DataFrame with its schema and artifact digest, and the source it read.
    load = complete["orders.load"]
    data = {d["name"]: d for d in load["outputs"]}["orders.load.data"]
    fields = [(f["name"], f["type"]) for f in data["facets"]["schema"]["fields"]]
    assert fields == [("id", "int64"), ("amount", "double"), ("kind", "string")]
    assert data["facets"]["version"]["datasetVersion"] == result.output_digest("load", "data")
    (source,) = load["inputs"]
    assert source["namespace"] == "file"
    assert source["name"] == str(lineage_project.dir / "data" / "orders.csv")
    expected = content_digest(lf.load.func(12)[0])
    assert source["facets"]["version"]["datasetVersion"] == expected
    assert [f["name"] for f in source["facets"]["schema"]["fields"]] == ["id", "amount", "kind"]

    # check: the contract's rules as data quality assertions on the data it checked.
    (checked,) = complete["orders.check"]["inputs"]
    assert checked["name"] == "orders.load.data"
    assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    results = {(a.get("column"), a["assertion"]): a["success"] for a in assertions}
    assert results[("kind", "values")] is False  # every third row is "c"
    assert results[("amount", "min")] is True
    assert results[("id", "unique")] is True
    assert all(a["severity"] == "error" for a in assertions)

    # The pipeline's COMPLETE: the source in, the outputs nothing else read out.
    run_done = complete["orders"]
    assert [d["name"] for d in run_done["inputs"]] == [source["name"]]
    assert sorted(d["name"] for d in run_done["outputs"]) == [
        "orders.load.dataset",
        "orders.publish.output",
    ]

    # The file transport wrote the same events, one JSON document a line.
    lines = (lineage_project.dir / ".opsloop" / "lineage.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == events


def test_a_failing_step_sends_fail_and_its_dependents_abort(
    lineage_project: Project, receiver: Receiver
) -> None:
    result = run_pipeline(lf.orders, {"rows": 6, "fail": True}, executor="inline", progress=False)
    assert result.status == "failed"

    for event in receiver.events:
        assert_valid(event)
    jobs = _by_job(receiver.events)
    assert jobs["orders"] == ["START", "FAIL"]
    assert jobs["orders.summarise"] == ["START", "FAIL"]
    assert jobs["orders.publish"] == ["ABORT"]
    assert jobs["orders.double"] == ["START", "COMPLETE"]
    fail = next(
        e
        for e in receiver.events
        if e["job"]["name"] == "orders.summarise" and e["eventType"] == "FAIL"
    )
    error = fail["run"]["facets"]["errorMessage"]
    assert "the summary broke on purpose" in error["message"]
    assert error["programmingLanguage"] == "python"
    assert "ValueError" in error["stackTrace"]
    assert [d["name"] for d in fail["inputs"]] == ["orders.double.output"]


def test_cached_steps_still_send_start_and_complete(
    lineage_project: Project, receiver: Receiver
) -> None:
    run_pipeline(lf.orders, {"rows": 5}, executor="inline", progress=False)
    receiver.events.clear()
    again = run_pipeline(lf.orders, {"rows": 5}, executor="inline", progress=False)
    assert len(again.cached_steps) == 5
    for event in receiver.events:
        assert_valid(event)
    assert all(v == ["START", "COMPLETE"] for v in _by_job(receiver.events).values())


def test_the_local_executor_emits_the_same_events(
    lineage_project: Project, receiver: Receiver
) -> None:
    result = run_pipeline(lf.orders, {"rows": 4}, executor="local", progress=False)
    assert result.succeeded, result.error
    assert _by_job(receiver.events) == {
        "orders": ["START", "COMPLETE"],
        **{f"orders.{s}": ["START", "COMPLETE"] for s in result.steps},
    }


def test_an_unreachable_receiver_never_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver() as gone:
        url = gone.url
    proj = _project(
        tmp_path,
        f"  namespace: elsewhere\n  transports:\n    - type: http\n      url: {url}\n"
        "      retries: 0\n      timeout: 1\n",
        monkeypatch,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="opsloop.pipeline.lineage"):
            result = run_pipeline(lf.orders, {"rows": 3}, executor="inline", progress=False)
    finally:
        proj.close()
        set_current_project(None)
    assert result.succeeded, result.error
    warnings = [r.getMessage() for r in caplog.records]
    assert any("START event of orders not delivered by the http transport" in w for w in warnings)


def test_without_a_lineage_section_nothing_is_emitted(project: Project, receiver: Receiver) -> None:
    assert not project.spec or not project.spec.lineage.enabled
    result = run_pipeline(lf.orders, {"rows": 3}, executor="inline", progress=False)
    assert result.succeeded and receiver.events == []
