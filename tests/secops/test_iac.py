"""secops.iac: checkov run on a folder, its findings read back (failed, skipped with the
reason written in the file), and clear errors when it cannot run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsloop.errors import SecurityError
from opsloop.secops import iac
from opsloop.secops.iac import IacScanResult, checkov_command, parse_report, run_checkov

BAD_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: ml
  annotations:
    checkov.io/skip1: CKV_K8S_43=the test image has no digest
spec:
  containers:
  - name: app
    image: nginx:latest
    securityContext:
      privileged: true
      allowPrivilegeEscalation: true
"""

BAD_DOCKERFILE = """\
FROM python:latest
#checkov:skip=CKV_DOCKER_2:a batch job, nothing to probe
ADD https://example.invalid/app.tar.gz /app/
"""


@pytest.mark.slow  # checkov, from a virtual environment made on first use
def test_failed_and_skipped_checks_are_reported(tmp_path: Path, checkov: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(BAD_POD)
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    result = run_checkov(tmp_path, checkov=checkov)
    assert not result.ok
    assert result.checkov_version == iac.CHECKOV_VERSION
    failed = {(f.rule_id, f.file) for f in result.failed}
    # Privileged, privilege escalation, image tagged latest; root user and ADD in the Dockerfile.
    for rule in ("CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_14"):
        assert (rule, "k8s/pod.yaml") in failed
    for rule in ("CKV_DOCKER_3", "CKV_DOCKER_4", "CKV_DOCKER_7"):
        assert (rule, "Dockerfile") in failed
    pod = next(f for f in result.failed if f.rule_id == "CKV_K8S_16")
    assert pod.resource == "Pod.ml.bad" and pod.status == "failed"
    assert pod.message and pod.framework == "kubernetes" and pod.lines == (1, 14)
    skipped = {f.rule_id: f.reason for f in result.skipped}
    assert skipped == {
        "CKV_K8S_43": "the test image has no digest",
        "CKV_DOCKER_2": "a batch job, nothing to probe",
    }


@pytest.mark.slow  # checkov, from a virtual environment made on first use
def test_a_clean_folder_is_ok(tmp_path: Path, checkov: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to check\n")
    result = run_checkov(tmp_path, checkov=checkov)
    assert result.ok and result.failed == [] and result.passed == 0


def test_errors_name_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecurityError, match="is not a folder"):
        run_checkov(tmp_path / "missing")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(iac.CHECKOV_ENV, raising=False)
    with pytest.raises(SecurityError, match=r"checkov \(the IaC scanner\) is not installed"):
        checkov_command()
    monkeypatch.setenv(iac.CHECKOV_ENV, str(tmp_path / "nope"))
    with pytest.raises(SecurityError, match=r"named by OPSLOOP_CHECKOV .* is not an executable"):
        checkov_command()
    # A checkov that crashes, or prints something that is not its report.
    fake = tmp_path / "fake-checkov"
    fake.write_text("#!/bin/sh\necho 'Traceback: boom' >&2\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(SecurityError, match=r"checkov failed on .* \(exit 2\): Traceback: boom"):
        run_checkov(tmp_path, checkov=fake)
    fake.write_text("#!/bin/sh\necho 'not json'\nexit 0\n")
    with pytest.raises(SecurityError, match=r"report on .* is not JSON"):
        run_checkov(tmp_path, checkov=fake)
    assert os.access(fake, os.X_OK)


def test_parse_report_reads_a_list_of_frameworks(tmp_path: Path) -> None:
    check = {
        "check_id": "CKV_X_1",
        "check_name": "Do the thing",
        "check_result": {"result": "FAILED"},
        "file_abs_path": str(tmp_path / "a" / "b.yaml"),
        "file_line_range": [3, 9],
        "resource": "Deployment.default.x",
        "severity": "HIGH",
    }
    report = [
        {"check_type": "kubernetes", "results": {"failed_checks": [check], "passed_checks": [{}]}},
        {"passed": 0, "failed": 0},  # a framework with nothing to check
    ]
    result = parse_report(report, tmp_path)
    assert isinstance(result, IacScanResult) and result.passed == 1
    [finding] = result.failed
    assert (finding.file, finding.lines, finding.severity) == ("a/b.yaml", (3, 9), "HIGH")
    with pytest.raises(SecurityError, match="unexpected entry"):
        parse_report(["oops"], tmp_path)
