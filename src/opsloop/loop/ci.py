"""``opsloop ci``: the checks a pull request to an opsloop project must pass, in one run.

In order: the spec, the data contract on the current data, the secrets scan, a training run
in CI mode (the ``ci:`` section's smaller budget), the gates against the champion, the model
scan and the ML-BOM of the version the run produced, checkov on what ``opsloop deploy render``
writes, and what a sync of the deployment documents would change. Each check gives one
:class:`CheckResult`; a failed check fails the run (:attr:`CiReport.ok`), a check that cannot
run says why it was skipped.

The reports go to one folder: ``junit.xml`` (one test case per check), ``results.sarif``
(model scan, contract violations, secrets, IaC findings), ``summary.md`` (for a pull-request
comment) and ``bom.json``.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from opsloop import __version__
from opsloop.context import Project, open_project, use_project
from opsloop.data import check_contract, parse_contract
from opsloop.data.sources import read_data, source_display
from opsloop.errors import NotFoundError, OpsloopError, SecurityError
from opsloop.gitops.reconciler import Reconciler
from opsloop.gitops.render import render_deployments
from opsloop.lifecycle import run_lifecycle
from opsloop.registry import verify_model_dir
from opsloop.secops import (
    DatasetRecord,
    PythonEnvironment,
    SarifLog,
    SarifResult,
    SarifRule,
    SarifRun,
    ml_bom_json,
    run_checkov,
    scan_path,
    scan_report_run,
)
from opsloop.secops.bom import default_datasets
from opsloop.secops.iac import checkov_command
from opsloop.spec.loader import SPEC_FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from opsloop.data.contract import ContractReport
    from opsloop.lifecycle import LifecycleOutcome
    from opsloop.secops import IacScanResult, ScanReport
    from opsloop.store.types import ModelVersionInfo

Status = Literal["passed", "failed", "skipped"]

#: The checks, in the order they run.
CHECKS = (
    "spec",
    "contract",
    "secrets",
    "train",
    "gates",
    "model-scan",
    "ml-bom",
    "iac",
    "deploy-diff",
)
DEFAULT_OUT = Path(".opsloop") / "ci"
#: The module of the secrets scanner; the check is skipped while it is not part of opsloop.
SECRETS_MODULE = "opsloop.secops.secrets"


@dataclass
class CheckResult:
    """What one check found.

    Attributes:
        name: One of :data:`CHECKS`.
        status: ``passed``, ``failed`` or ``skipped``.
        duration_s: How long it took.
        message: One line: the verdict and why.
        details: JSON-ready data for the reports.
    """

    name: str
    status: Status
    duration_s: float
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CiReport:
    """The checks of one ``opsloop ci`` run and the reports written.

    Attributes:
        checks: One result per check, in order.
        out_dir: The reports' folder.
        files: The reports: ``junit``, ``sarif``, ``summary`` and (when made) ``bom``.
    """

    checks: list[CheckResult]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No check failed."""
        return all(c.status != "failed" for c in self.checks)

    def check(self, name: str) -> CheckResult:
        """The result of the check ``name``.

        Raises:
            NotFoundError: No such check ran.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise NotFoundError(f"no CI check named {name!r}; checks: {', '.join(CHECKS)}")


class SecretsScanner(Protocol):
    """What the CI needs of a secrets scanner: ``scan_secrets(folder)`` whose result has
    ``findings`` (or is an iterable of them); a finding names its file, line and kind."""

    def __call__(self, root: Path, /) -> Any: ...


# A check ends early by raising its verdict: a signal inside this module, never an error a
# caller sees (those are OpsloopError subclasses, in opsloop.errors).
class _Verdict(Exception):  # noqa: N818 - a verdict, not an error
    """A check's failed or skipped verdict, with its message and details."""

    status: Status = "failed"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class _Failed(_Verdict):
    """The check failed."""


class _Skip(_Verdict):
    """The check cannot run here."""

    status: Status = "skipped"


@dataclass
class _State:
    """What the checks hand on to the ones after them."""

    project: Project | None = None
    outcome: LifecycleOutcome | None = None
    version: ModelVersionInfo | None = None
    scan: ScanReport | None = None
    contract: ContractReport | None = None
    secrets: list[dict[str, Any]] = field(default_factory=list)
    iac: IacScanResult | None = None
    sarif: SarifLog = field(default_factory=SarifLog)


def run_ci(
    project_dir: Path,
    *,
    out_dir: Path | None = None,
    train: bool = True,
    checkov: str | Path | None = None,
    secrets_scanner: SecretsScanner | None = None,
) -> CiReport:
    """Run every check on the project in ``project_dir`` and write the reports.

    Args:
        project_dir: The project folder (with its ``opsloop.yaml``).
        out_dir: The reports' folder (default ``<project>/.opsloop/ci``).
        train: Run the training; without it, the gates are skipped and the model checks
            cover the champion.
        checkov: The checkov executable (default: ``OPSLOOP_CHECKOV``, else ``PATH``).
        secrets_scanner: The secrets scanner (default: opsloop's, when installed).
    """
    project_dir = Path(project_dir).resolve()
    out = Path(out_dir) if out_dir is not None else project_dir / DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    state = _State()
    scanner = secrets_scanner if secrets_scanner is not None else _default_secrets_scanner()
    steps: list[tuple[str, Callable[[], tuple[str, dict[str, Any]]]]] = [
        ("spec", lambda: _spec(project_dir, state)),
        ("contract", lambda: _contract(state)),
        ("secrets", lambda: _secrets(state, scanner)),
        ("train", lambda: _train(state, train)),
        ("gates", lambda: _gates(state)),
        ("model-scan", lambda: _model_scan(state)),
        ("ml-bom", lambda: _bom(state, out)),
        ("iac", lambda: _iac(state, out, checkov)),
        ("deploy-diff", lambda: _deploy_diff(state)),
    ]
    results: list[CheckResult] = []
    try:
        for name, check in steps:
            results.append(_timed(name, check))
    finally:
        if state.project is not None:
            state.project.close()
    report = CiReport(checks=results, out_dir=out)
    report.files["junit"] = write_junit(results, out / "junit.xml")
    report.files["sarif"] = state.sarif.write(out / "results.sarif")
    summary = out / "summary.md"
    summary.write_text(markdown_summary(results), encoding="utf-8")
    report.files["summary"] = summary
    if (out / "bom.json").is_file() and report.check("ml-bom").status == "passed":
        report.files["bom"] = out / "bom.json"
    return report


def _timed(name: str, check: Callable[[], tuple[str, dict[str, Any]]]) -> CheckResult:
    start = time.perf_counter()
    status: Status = "passed"
    try:
        message, details = check()
    except _Verdict as verdict:
        status, message, details = verdict.status, verdict.message, verdict.details
    except OpsloopError as exc:
        status, message, details = "failed", str(exc), {}
    return CheckResult(name, status, time.perf_counter() - start, message, details)


def _need(state: _State) -> Project:
    if state.project is None:
        raise _Skip("the spec did not load")
    return state.project


# -- the checks ---------------------------------------------------------------------------------


def _spec(project_dir: Path, state: _State) -> tuple[str, dict[str, Any]]:
    if not (project_dir / SPEC_FILE).is_file():
        raise _Failed(f"{project_dir} has no {SPEC_FILE}")
    # Lazy: the lifecycle's parameter check loads the data and ML packages.
    from opsloop.lifecycle.driver import lifecycle_params  # noqa: PLC0415

    proj = open_project(project_dir)
    state.project = proj
    spec = proj.spec
    if spec is None or not spec.has_lifecycle:
        return f"{SPEC_FILE} is valid (no lifecycle declared)", {}
    with use_project(proj):
        lifecycle_params(proj, spec.ci.overrides)
    return f"{SPEC_FILE} is valid", {"ci": spec.ci.overrides}


def _contract(state: _State) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    spec = proj.spec
    if spec is None or spec.data is None:
        raise _Skip("no data source declared")
    if not spec.contract:
        raise _Skip("no data contract declared")
    frame = read_data(proj, spec.data)
    report = check_contract(frame, parse_contract(spec.contract, file=str(proj.dir / SPEC_FILE)))
    state.contract = report
    shown = source_display(spec.data.source)
    state.sarif.add_run(_contract_run(report, shown, proj.dir))
    details = report.model_dump(mode="json")
    where = f"{shown} ({report.rows:,} rows, {report.rules_checked} rules)"
    if not report.passed:
        broken = "; ".join(
            f"{f.column}: {f.rule}" if f.column else f.rule for f in report.errors[:5]
        )
        raise _Failed(f"{where} breaks its contract: {broken}", details)
    warned = len(report.failures)
    return f"{where} meets its contract" + (f" ({warned} warning(s))" if warned else ""), details


def _default_secrets_scanner() -> SecretsScanner | None:
    try:
        module = importlib.import_module(SECRETS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SECRETS_MODULE:
            raise
        return None
    scanner: SecretsScanner | None = getattr(module, "scan_secrets", None)
    return scanner


def _secrets(state: _State, scanner: SecretsScanner | None) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    if scanner is None:
        raise _Skip("secrets scanner not installed")
    result = scanner(proj.dir)
    # Secrets the project's baseline lists are audited ones: only new ones fail.
    found = getattr(result, "new", getattr(result, "findings", result))
    findings = [_secret_finding(f, proj.dir) for f in (found or [])]
    state.secrets = findings
    rule = SarifRule("secrets/committed", "A secret committed to the repository", severity="high")
    state.sarif.add_run(
        SarifRun(
            tool="opsloop-secrets",
            version=__version__,
            rules=[rule],
            results=[
                SarifResult(
                    rule.id,
                    f"{f['kind']} committed",
                    "high",
                    uri=f["file"],
                    line=f["line"],
                )
                for f in findings
            ],
            root=str(proj.dir),
        )
    )
    if findings:
        where = ", ".join(f"{f['file']}:{f['line']}" for f in findings[:5])
        raise _Failed(f"{len(findings)} committed secret(s): {where}", {"findings": findings})
    return "no committed secrets", {"findings": []}


def _secret_finding(finding: Any, root: Path) -> dict[str, Any]:
    def first(*names: str) -> Any:
        for n in names:
            value = finding.get(n) if isinstance(finding, dict) else getattr(finding, n, None)
            if value is not None:
                return value
        return None

    line = first("line", "line_number")
    file = Path(str(first("file", "filename", "path") or "?"))
    # SARIF locations are relative to the project; a path outside it keeps its name only.
    if file.is_absolute():
        file = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
    return {
        "file": file.as_posix(),
        "line": int(line) if isinstance(line, int) and line >= 1 else None,
        "kind": str(first("kind", "type", "rule_id", "rule") or "secret"),
    }


def _train(state: _State, train: bool) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    spec = proj.spec
    if not train:
        raise _Skip("--no-train: no training run")
    if spec is None or not spec.has_lifecycle:
        raise _Skip("no lifecycle declared")
    if state.contract is not None and not state.contract.passed:
        raise _Skip("the data breaks its contract: nothing to train on")
    outcome = run_lifecycle(proj, overrides=spec.ci.overrides, progress=False)
    state.outcome = outcome
    details: dict[str, Any] = {
        "run_id": outcome.run_id,
        "steps": outcome.steps,
        "ci": spec.ci.overrides,
    }
    if not outcome.succeeded:
        raise _Failed(f"phase '{outcome.failed_step}' failed: {outcome.error}", details)
    reg = outcome.registration or {}
    if reg.get("version") is not None:
        state.version = proj.store.models.get_version(str(reg["model"]), int(reg["version"]))
    details["registration"] = reg
    metrics = (outcome.outputs.get("evaluate") or {}).get("metrics") or {}
    details["metrics"] = metrics
    details["champion_metrics"] = (outcome.outputs.get("evaluate") or {}).get("champion_metrics")
    version = f"{reg.get('model')} v{reg.get('version')}" if reg else "no version"
    return f"run {outcome.run_id[:12]} trained {version}", details


def _gates(state: _State) -> tuple[str, dict[str, Any]]:
    outcome = state.outcome
    if outcome is None or not outcome.succeeded:
        raise _Skip("no training run to gate")
    gates = outcome.outputs.get("gate") or []
    details = {"gates": gates}
    failed = [g for g in gates if not g.get("passed")]
    if failed:
        why = "; ".join(f"{g.get('name')}: {g.get('message')}" for g in failed)
        raise _Failed(f"{len(failed)} of {len(gates)} gate(s) failed: {why}", details)
    return f"{len(gates)} gate(s) passed", details


def _model_version(state: _State) -> ModelVersionInfo:
    """The version the run produced; without a run, the champion (what would deploy)."""
    proj = _need(state)
    if state.version is not None:
        return state.version
    if state.outcome is not None:
        raise _Skip("the training run registered no version")
    spec = proj.spec
    if spec is None or not spec.has_lifecycle:
        raise _Skip("no lifecycle declared: no model")
    model = spec.registration.model if spec.registration is not None else spec.project
    try:
        version = proj.store.models.get_version_by_alias(model, "champion")
    except NotFoundError:
        raise _Skip(f"no training run and no champion of '{model}'") from None
    state.version = version
    return version


def _model_scan(state: _State) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    version = _model_version(state)
    with tempfile.TemporaryDirectory(prefix="opsloop-ci-") as tmp:
        folder = proj.artifacts.get_dir(version.artifact_digest, Path(tmp) / "model")
        report = scan_path(folder, trusted_types=_recorded_trusted(version))
    state.scan = report
    uri = f"models:/{version.model_name}/{version.version}"
    state.sarif.add_run(scan_report_run(report, root=f"{uri}/"))
    details = {"model": uri, **report.summary()}
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts().items() if n) or "no findings"
    text = f"{uri}: {report.status}, {len(report.files)} file(s), {counts}"
    if report.status != "passed":
        raise _Failed(text, details)
    return text, details


def _recorded_trusted(version: ModelVersionInfo) -> list[str]:
    package = version.details.get("package")
    trusted = package.get("extra_trusted_types", []) if isinstance(package, dict) else []
    return [str(t) for t in trusted]


def _bom(state: _State, out: Path) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    version = _model_version(state)
    if state.scan is not None and state.scan.status != "passed":
        raise _Failed("not described: the model scan failed")
    datasets = default_datasets(version)
    if version.dataset_digest:
        with contextlib.suppress(NotFoundError):
            datasets = [DatasetRecord.from_info(proj.store.datasets.get(version.dataset_digest))]
    with tempfile.TemporaryDirectory(prefix="opsloop-ci-") as tmp:
        folder = proj.artifacts.get_dir(version.artifact_digest, Path(tmp) / "model")
        meta = verify_model_dir(
            folder,
            trusted_types=_recorded_trusted(version),
            expected_digest=version.artifact_digest,
        )
        env = PythonEnvironment.recorded(meta.library_versions, meta.python_version)
        text = ml_bom_json(version, folder, datasets=datasets, environment=env)
    path = out / "bom.json"
    path.write_text(text, encoding="utf-8")
    return (
        f"CycloneDX 1.6 ML-BOM of {version.model_name} v{version.version} written to {path.name}",
        {"file": str(path), "packages": len(env.packages), "datasets": len(datasets)},
    )


def _iac(state: _State, out: Path, checkov: str | Path | None) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    try:
        checkov_command(checkov)
    except SecurityError as exc:
        raise _Skip(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None
    rendered = out / "rendered"
    shutil.rmtree(rendered, ignore_errors=True)
    rendered.mkdir(parents=True)
    deploy = (proj.dir / "deploy").is_dir()
    problems: dict[str, str] = {}
    if deploy:
        result = render_deployments(rendered, project=proj, revision=None)
        problems = result.problems
    # The CI workflow files are infrastructure as code too.
    for rel in (".github/workflows", ".gitlab-ci.yml"):
        src = proj.dir / rel
        if src.is_dir():
            shutil.copytree(src, rendered / rel, dirs_exist_ok=True)
        elif src.is_file():
            (rendered / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, rendered / rel)
    if not any(rendered.rglob("*")):
        raise _Skip("nothing to check: no deployment documents and no CI workflow files")
    scan = run_checkov(rendered, checkov=checkov)
    state.iac = scan
    state.sarif.add_run(_iac_run(scan))
    details = {
        "passed": scan.passed,
        "failed": [f.rule_id + " " + f.file for f in scan.failed],
        "skipped": len(scan.skipped),
        "parsing_errors": scan.parsing_errors,
        "render_problems": problems,
    }
    text = (
        f"checkov {scan.checkov_version}: {scan.passed} passed, {len(scan.failed)} failed, "
        f"{len(scan.skipped)} skipped"
    )
    if not scan.ok or problems:
        extra = f"; not rendered: {', '.join(problems)}" if problems else ""
        raise _Failed(text + extra, details)
    return text, details


def _deploy_diff(state: _State) -> tuple[str, dict[str, Any]]:
    proj = _need(state)
    if not (proj.dir / "deploy").is_dir():
        raise _Skip("no deploy/ folder")
    try:
        reconciler = Reconciler(proj)
    except OpsloopError as exc:
        raise _Skip(exc.message) from None
    result = reconciler.sync(revision=None, dry_run=True)
    changes = [
        {
            "deployment": o.name,
            "action": o.action,
            "serving": o.serving,
            "reason": o.reason,
            "diff": o.diff,
        }
        for o in result.outcomes
    ]
    problems = [f"{p.name or p.file}: {p.message}" for p in result.problems]
    refused = [c for c in changes if c["action"] == "invalid"]
    details = {"changes": changes, "problems": problems}
    if problems or refused:
        why = "; ".join(problems + [f"{c['deployment']}: {c['reason']}" for c in refused])
        raise _Failed(f"the deployment documents cannot be applied: {why}", details)
    moving = [c for c in changes if c["action"] not in ("none", "skipped")]
    if not moving:
        return f"{len(changes)} deployment(s), nothing would change", details
    return f"{len(moving)} of {len(changes)} deployment(s) would change on merge", details


# -- SARIF runs ---------------------------------------------------------------------------------


def _contract_run(report: ContractReport, source: str, root: Path) -> SarifRun:
    rules: dict[str, SarifRule] = {}
    results = []
    for f in report.failures:
        rule_id = f"contract/{f.rule}"
        severity = "high" if f.severity == "error" else "medium"
        rules.setdefault(rule_id, SarifRule(rule_id, f"data contract rule '{f.rule}'", "", "high"))
        subject = f"column '{f.column}'" if f.column else "the table"
        results.append(
            SarifResult(
                rule_id,
                f"{source}: {subject}: {f.message}",
                severity,
                uri=SPEC_FILE,
                properties={"column": f.column, "failing_rows": f.failing_rows},
            )
        )
    return SarifRun(
        tool="opsloop-contract",
        version=__version__,
        rules=list(rules.values()),
        results=results,
        root=str(root),
    )


def _iac_run(scan: IacScanResult) -> SarifRun:
    rules: dict[str, SarifRule] = {}
    results = []
    for f in scan.failed:
        rules.setdefault(
            f.rule_id, SarifRule(f.rule_id, f.message, f.guideline or "", f.severity or "medium")
        )
        results.append(
            SarifResult(
                f.rule_id,
                f"{f.resource}: {f.message}",
                f.severity or "medium",
                uri=f.file.lstrip("/"),
                line=f.lines[0] if f.lines and f.lines[0] >= 1 else None,
            )
        )
    return SarifRun(
        tool="checkov",
        version=scan.checkov_version,
        rules=list(rules.values()),
        results=results,
        root=str(scan.folder),
        information_uri="https://www.checkov.io/",
    )


# -- reports ------------------------------------------------------------------------------------


def write_junit(results: Iterable[CheckResult], path: Path) -> Path:
    """One JUnit test case per check (failed: a failure, skipped: skipped) in ``path``."""
    suite = TestSuite("opsloop ci")
    for r in results:
        case = TestCase(r.name, classname="opsloop.ci", time=round(r.duration_s, 3))
        if r.status == "failed":
            case.result = [Failure(r.message)]
        elif r.status == "skipped":
            case.result = [Skipped(r.message)]
        case.system_out = r.message
        suite.add_testcase(case)
    xml = JUnitXml("opsloop ci")
    xml.add_testsuite(suite)  # counts the suite's tests, failures and skips into both
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
    return path


_ICONS = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_summary(results: list[CheckResult]) -> str:
    """The run in Markdown, for a pull-request comment."""
    by_name = {r.name: r for r in results}
    failed = [r for r in results if r.status == "failed"]
    verdict = "❌ **failed**" if failed else "✅ **passed**"
    lines = [f"## opsloop ci: {verdict}", "", "| check | result | time | details |"]
    lines.append("| --- | --- | --- | --- |")
    for r in results:
        lines.append(
            f"| {r.name} | {_ICONS[r.status]} {r.status} | {r.duration_s:.1f} s | "
            f"{_cell(r.message)} |"
        )
    train = by_name.get("train")
    if train is not None and train.details.get("metrics"):
        champion = train.details.get("champion_metrics") or {}
        lines += ["", "### Metrics vs champion", "", "| metric | candidate | champion |"]
        lines.append("| --- | --- | --- |")
        for metric, value in train.details["metrics"].items():
            lines.append(f"| {metric} | {_cell(value)} | {_cell(champion.get(metric))} |")
    gates = by_name.get("gates")
    if gates is not None and gates.details.get("gates"):
        lines += ["", "### Gates", "", "| gate | result | requirement | why |"]
        lines.append("| --- | --- | --- | --- |")
        for g in gates.details["gates"]:
            mark = "✅" if g.get("passed") else "❌"
            lines.append(
                f"| {_cell(g.get('name'))} | {mark} | {_cell(g.get('requirement'))} | "
                f"{_cell(g.get('message'))} |"
            )
    scan = by_name.get("model-scan")
    if scan is not None:
        lines += ["", f"### Model scan: {scan.status}", "", _cell(scan.message)]
    diff = by_name.get("deploy-diff")
    if diff is not None:
        lines += ["", "### What would deploy", ""]
        changes = diff.details.get("changes") or []
        if not changes:
            lines.append(_cell(diff.message))
        else:
            lines += ["| deployment | action | serving | reason |", "| --- | --- | --- | --- |"]
            for c in changes:
                lines.append(
                    f"| {_cell(c['deployment'])} | {_cell(c['action'])} | "
                    f"{_cell(c['serving'])} | {_cell(c['reason'])} |"
                )
    return "\n".join(lines) + "\n"
