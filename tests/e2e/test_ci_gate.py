"""``opsloop ci`` as a CI job runs it, on one project with three problems at once: data that
breaks its contract, a committed secret, and a champion whose files run a shell command when
loaded. The command fails, and each problem is its own failed JUnit case and SARIF result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.cli.test_cli import opsloop
from tests.gitops.conftest import git
from tests.lifecycle.test_lifecycle import make_frame
from tests.loop.test_ci import add_malicious_champion, make_ci_project

pytestmark = pytest.mark.slow


def test_ci_fails_on_a_broken_contract_a_committed_secret_and_a_malicious_model(
    tmp_path: Path,
) -> None:
    frame = make_frame(300)
    frame.loc[:4, "tenure_months"] = -3
    folder = make_ci_project(tmp_path / "proj", frame=frame)
    key = "AKIA" + "ZXCVBNMASDFGHJKL"  # built from pieces: this file commits no secret
    (folder / "settings.py").write_text(f'AWS_KEY = "{key}"\n')
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "add settings")
    add_malicious_champion(folder, tmp_path / "evil")

    out = tmp_path / "reports"
    red = opsloop("ci", "--no-train", "--out", str(out), cwd=folder)

    assert red.returncode == 1, red.stdout + red.stderr
    failed = {
        case.name: case.result[0].message or ""
        for suite in JUnitXml.fromfile(str(out / "junit.xml"))
        for case in suite
        if case.result and isinstance(case.result[0], Failure)
    }
    assert {"contract", "secrets", "model-scan"} <= set(failed), failed
    assert "tenure_months" in failed["contract"]
    assert "settings.py:1" in failed["secrets"]
    assert "critical" in failed["model-scan"]
    runs = {r["tool"]["driver"]["name"]: r["results"] for r in json.loads(
        (out / "results.sarif").read_text())["runs"]}  # fmt: skip
    assert runs["opsloop-contract"], runs
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in runs["opsloop-secrets"]] == ["settings.py"]  # fmt: skip
    assert any(r["ruleId"] == "pickle/dangerous-global" for r in runs["opsloop-model-scan"])
    summary = (out / "summary.md").read_text()
    assert "failed" in summary and "model-scan" in summary
    # The scan read the pickle; nothing ran it.
    assert not (folder / "pwned").exists()
