"""Infrastructure as code checks: run checkov, the open-source IaC scanner, on a folder of
rendered files (Kubernetes manifests, Dockerfiles, Helm charts, CI workflows; checkov reads a
Helm chart through the ``helm`` program only, so without it check what the chart renders)
and read its findings back as plain records.

checkov is an external program, not an opsloop dependency (its pins clash with opsloop's):
:func:`checkov_command` finds it (an explicit path, ``OPSLOOP_CHECKOV``, or ``PATH``) and
:func:`install_checkov` makes a private virtual environment with the pinned version. A check
skipped in a file (``checkov.io/skip<N>`` annotations, ``#checkov:skip=`` comments) is
reported as skipped with the reason written there; it is never a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opsloop.errors import SecurityError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CHECKOV_ENV",
    "CHECKOV_VERSION",
    "DEFAULT_FRAMEWORKS",
    "IacFinding",
    "IacScanResult",
    "checkov_command",
    "install_checkov",
    "parse_report",
    "run_checkov",
]

#: The checkov release opsloop is tested with (and :func:`install_checkov` installs).
CHECKOV_VERSION = "3.3.30"
#: Environment variable naming the checkov executable to run.
CHECKOV_ENV = "OPSLOOP_CHECKOV"
#: What opsloop renders or writes: manifests, image recipes, charts, CI workflows.
DEFAULT_FRAMEWORKS = ("kubernetes", "dockerfile", "helm", "github_actions", "gitlab_ci")


@dataclass(frozen=True)
class IacFinding:
    """One failed or skipped checkov check.

    Attributes:
        rule_id: The check, e.g. ``CKV_K8S_20``.
        message: What the check asks for (checkov's check name).
        file: The file, relative to the scanned folder.
        resource: The object checked, e.g. ``Deployment.default.churn-prod``.
        status: ``failed`` or ``skipped``.
        severity: checkov's severity, when it reports one (it does only with a platform key).
        lines: First and last line of the object in the file, when known.
        reason: Why the check was skipped (the comment written in the file).
        guideline: Link to the check's documentation, when known.
        framework: checkov's framework that ran the check (``kubernetes``, ``dockerfile`` …).
    """

    rule_id: str
    message: str
    file: str
    resource: str
    status: Literal["failed", "skipped"]
    severity: str | None = None
    lines: tuple[int, int] | None = None
    reason: str | None = None
    guideline: str | None = None
    framework: str = ""


@dataclass
class IacScanResult:
    """What checkov found in a folder.

    Attributes:
        folder: The folder scanned.
        checkov_version: The checkov that ran.
        passed: Number of passed checks.
        failed: The failed checks.
        skipped: The checks skipped in the files, with their reasons.
        parsing_errors: Files checkov could not parse (relative to the folder).
        passed_by_framework: Passed checks per checkov framework (what was checked at all).
    """

    folder: Path
    checkov_version: str
    passed: int = 0
    failed: list[IacFinding] = field(default_factory=list)
    skipped: list[IacFinding] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    passed_by_framework: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No failed check and every file parsed."""
        return not self.failed and not self.parsing_errors


def checkov_command(checkov: str | Path | None = None) -> list[str]:
    """The command that runs checkov: ``checkov``, else ``OPSLOOP_CHECKOV``, else ``PATH``.

    Raises:
        SecurityError: No checkov there.
    """
    chosen = str(checkov) if checkov else os.environ.get(CHECKOV_ENV) or ""
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            source = "given" if checkov else f"named by {CHECKOV_ENV}"
            raise SecurityError(f"checkov {source} ({chosen}) is not an executable")
        return [found]
    found = shutil.which("checkov")
    if found is None:
        raise SecurityError(
            "checkov (the IaC scanner) is not installed",
            hint=f"install it in its own environment (pip install checkov=={CHECKOV_VERSION}) "
            f"and put it on PATH or name it with {CHECKOV_ENV}",
        )
    return [found]


def install_checkov(env_dir: Path, version: str = CHECKOV_VERSION) -> Path:
    """Make a virtual environment at ``env_dir`` with checkov ``version`` (once: a marker
    file records what was installed) and return its ``checkov`` executable.

    Raises:
        SecurityError: pip could not install it.
    """
    env_dir = Path(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    executable = bindir / ("checkov.exe" if sys.platform == "win32" else "checkov")
    marker = env_dir / ".opsloop-installed"
    wanted = f"checkov=={version}"
    if marker.is_file() and marker.read_text() == wanted and executable.exists():
        return executable
    if not (bindir / "python").exists() and not (bindir / "python.exe").exists():
        venv.create(env_dir, with_pip=True, clear=True)
    python = next(p for p in (bindir / "python", bindir / "python.exe") if p.exists())
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", wanted],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not executable.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SecurityError(f"could not install {wanted} into {env_dir}: {tail}")
    marker.write_text(wanted)
    return executable


def run_checkov(
    folder: Path,
    *,
    frameworks: Sequence[str] = DEFAULT_FRAMEWORKS,
    checkov: str | Path | None = None,
    timeout_s: float = 600,
) -> IacScanResult:
    """Run checkov on every file under ``folder`` and return its findings.

    checkov runs offline (``--skip-download``: no platform calls, so no severities), with
    every check of ``frameworks`` and the skips written in the files.

    Args:
        folder: The folder to check.
        frameworks: checkov frameworks to run.
        checkov: The checkov executable (default: see :func:`checkov_command`).
        timeout_s: Longest run allowed.

    Raises:
        SecurityError: ``folder`` is not a folder, checkov is missing, fails or times out,
            or its report cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SecurityError(f"IaC check: {folder} is not a folder")
    cmd = [
        *checkov_command(checkov),
        "--directory",
        str(folder),
        "--output",
        "json",
        "--skip-download",
        "--framework",
        *frameworks,
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, check=False, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise SecurityError(f"checkov did not finish on {folder} within {timeout_s:g} s") from exc
    # 0: no failed check, 1: failed checks; anything else is checkov failing.
    if proc.returncode not in (0, 1):
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SecurityError(f"checkov failed on {folder} (exit {proc.returncode}): {tail}")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise SecurityError(
            f"checkov's report on {folder} is not JSON ({exc}): {proc.stdout[:200]!r}"
        ) from exc
    return parse_report(report, folder)


def parse_report(report: Any, folder: Path) -> IacScanResult:
    """Read checkov's JSON report (one framework's object, or a list of them)."""
    reports = report if isinstance(report, list) else [report]
    result = IacScanResult(folder=Path(folder), checkov_version="")
    for item in reports:
        if not isinstance(item, dict):
            raise SecurityError(f"checkov's report: unexpected entry {item!r:.80}")
        summary = item.get("summary") or {}
        result.checkov_version = result.checkov_version or str(summary.get("checkov_version", ""))
        results = item.get("results")
        if not isinstance(results, dict):
            continue  # a framework that found no file to check
        framework = str(item.get("check_type", ""))
        passed = len(results.get("passed_checks") or [])
        result.passed += passed
        result.passed_by_framework[framework] = (
            result.passed_by_framework.get(framework, 0) + passed
        )
        for status, key in (("failed", "failed_checks"), ("skipped", "skipped_checks")):
            for check in results.get(key) or []:
                finding = _finding(check, status, framework, folder)
                (result.failed if status == "failed" else result.skipped).append(finding)
        for path in results.get("parsing_errors") or []:
            result.parsing_errors.append(_relative(str(path), folder))
    return result


def _finding(check: dict[str, Any], status: str, framework: str, folder: Path) -> IacFinding:
    lines = check.get("file_line_range")
    reason = (check.get("check_result") or {}).get("suppress_comment")
    return IacFinding(
        rule_id=str(check.get("check_id", "")),
        message=str(check.get("check_name", "")),
        file=_relative(str(check.get("file_abs_path") or check.get("file_path", "")), folder),
        resource=str(check.get("resource", "")),
        status="failed" if status == "failed" else "skipped",
        severity=check.get("severity") or None,
        lines=(int(lines[0]), int(lines[1]))
        if isinstance(lines, list) and len(lines) == 2
        else None,
        reason=str(reason) if reason else None,
        guideline=check.get("guideline") or None,
        framework=framework,
    )


def _relative(path: str, folder: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return path.lstrip("/")
