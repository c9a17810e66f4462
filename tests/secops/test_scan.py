"""The model scanner on ordinary folders: clean models pass, reports say what they hold."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.errors import SecurityError, UntrustedTypeError
from opsloop.registry import save_model
from opsloop.secops import scan_path, scan_status, severity_at_least
from opsloop.secops.scan import RULES, SEVERITIES


@pytest.fixture
def packaged(tmp_path: Path) -> Path:
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    return save_model(model, tmp_path / "model", input_example=x, project_dir=tmp_path).path


def test_a_packaged_model_passes_with_no_findings(packaged: Path) -> None:
    report = scan_path(packaged)
    assert report.status == "passed"
    assert report.findings == ()
    assert set(report.files) == {"MLmodel", "model.skops", "input_example.parquet"}
    summary = report.summary()
    assert summary["status"] == "passed"
    assert summary["scanner"] == "opsloop-model-scan"
    assert summary["findings"] == dict.fromkeys(SEVERITIES, 0)
    assert report.engines["picklescan"] != "unknown"


def test_a_benign_sklearn_pickle_is_reported_but_passes(tmp_path: Path) -> None:
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    joblib.dump({"weights": np.arange(10_000.0)}, tmp_path / "arrays.joblib")
    report = scan_path(tmp_path)
    assert report.status == "passed"
    rules = {(f.file, f.rule_id) for f in report.findings}
    assert ("model.pkl", "pickle/file") in rules
    assert ("model.pkl", "pickle/unknown-global") in rules
    assert ("arrays.joblib", "pickle/file") in rules
    # joblib's array wrapper is no finding of its own.
    assert not [f for f in report.findings if f.offending and "joblib" in f.offending]
    assert all(not severity_at_least(f.severity, "high") for f in report.findings)


def test_fail_at_moves_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(LogisticRegression()))
    assert scan_path(tmp_path).status == "passed"
    assert scan_path(tmp_path, fail_at="low").status == "failed"


def test_a_single_file_is_scanned_by_its_name(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    report = scan_path(file)
    assert report.files == ("weights.bin",)
    assert {f.file for f in report.findings} == {"weights.bin"}


def test_findings_are_sorted_worst_first(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    ranks = [SEVERITIES.index(f.severity) for f in scan_path(tmp_path).findings]
    assert ranks == sorted(ranks)


def test_every_rule_has_a_valid_severity() -> None:
    assert all(rule.severity in SEVERITIES and rule.id == key for key, rule in RULES.items())


def test_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="no such file or folder"):
        scan_path(tmp_path / "missing")
    with pytest.raises(SecurityError, match="unknown severity 'severe'"):
        scan_path(tmp_path, fail_at="severe")  # type: ignore[arg-type]
    with pytest.raises(UntrustedTypeError, match=r"posix\.system"):
        scan_path(tmp_path, trusted_types=["posix.system"])


def test_scan_status_of_version_details() -> None:
    assert scan_status({}) == "not scanned"
    assert scan_status(None) == "not scanned"
    assert scan_status({"scan": {"status": "failed"}}) == "failed"
    assert scan_status({"scan": {"status": "passed"}}) == "passed"
    assert scan_status({"scan": "garbage"}) == "not scanned"
