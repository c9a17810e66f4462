"""The declared lifecycle emits OpenLineage events: its source file as an input with the data
set version's digest, and its contract's rules as data quality assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opsloop.context import open_project, set_current_project
from opsloop.lifecycle import run_lifecycle

from ..pipeline.test_lineage import assert_valid
from .test_lifecycle import base_spec, make_frame


def test_a_lifecycle_stopped_by_its_contract_reports_it_as_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "lc"
    (folder / "data").mkdir(parents=True)
    spec = base_spec(lineage={"transports": [{"type": "file", "path": "lineage.jsonl"}]})
    (folder / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    df = make_frame()
    df.loc[3, "tenure_months"] = -5
    df.to_csv(folder / "data" / "customers.csv", index=False)
    proj = open_project(folder)
    set_current_project(proj)
    try:
        out = run_lifecycle(proj, executor="inline", progress=False)
    finally:
        proj.close()
        set_current_project(None)
    assert out.failed_step == "contract_gate"

    events = [json.loads(line) for line in (folder / "lineage.jsonl").read_text().splitlines()]
    for event in events:
        assert_valid(event)
    states = {(e["job"]["name"], e["eventType"]) for e in events}
    assert {("lifecycle", "START"), ("lifecycle", "FAIL")} <= states
    assert ("lifecycle.contract_gate", "FAIL") in states
    assert ("lifecycle.train", "ABORT") in states
    assert {e["job"]["namespace"] for e in events} == {"lc"}

    done = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    (source,) = done["lifecycle.ingest"]["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(folder / "data/customers.csv"))
    assert source["facets"]["version"]["datasetVersion"] == out.outputs["ingest"]["digest"]
    checked = {d["name"]: d for d in done["lifecycle.validate"]["inputs"]}["lifecycle.ingest.data"]
    assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    results = {(a.get("column"), a["assertion"]): a["success"] for a in assertions}
    assert results[("tenure_months", "min")] is False
    assert results[("plan", "values")] is True
    assert results[(None, "row_count")] is True
