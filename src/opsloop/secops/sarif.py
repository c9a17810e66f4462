"""SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format) logs.

A :class:`SarifLog` holds one run per tool; each check (the model scan, and later contract
violations, secrets, IaC findings) adds its own run with :meth:`SarifLog.add_run`, and
:meth:`SarifLog.write` writes the whole log once. Locations are URIs relative to the scanned
folder, anchored by ``originalUriBaseIds`` so that code-scanning services place them.

Severities map to SARIF levels (critical and high: ``error``; medium: ``warning``; low and
info: ``note``), and to the numeric ``security-severity`` property code-scanning services rank
by.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from opsloop.errors import SecurityError
from opsloop.secops.scan import RULES, SEVERITIES, ScanReport

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "SARIF_SCHEMA_URI",
    "SARIF_VERSION",
    "SarifLevel",
    "SarifLog",
    "SarifResult",
    "SarifRule",
    "SarifRun",
    "merge_runs",
    "scan_report_run",
    "severity_level",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SarifLevel = Literal["error", "warning", "note", "none"]

_LEVELS: Mapping[str, SarifLevel] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
# The CVSS-like scores GitHub code scanning reads from a rule's "security-severity".
_SCORES: Mapping[str, str] = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "0.0",
}
_BASE_ID = "SCANROOT"
# A URI scheme of two letters or more (one letter is a Windows drive).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def severity_level(severity: str) -> SarifLevel:
    """The SARIF level of an opsloop severity.

    Raises:
        SecurityError: ``severity`` is not one of critical, high, medium, low, info.
    """
    try:
        return _LEVELS[severity]
    except KeyError:
        raise SecurityError(
            f"unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}"
        ) from None


@dataclass(frozen=True)
class SarifRule:
    """A rule of a tool (``reportingDescriptor``).

    Attributes:
        id: The rule id results refer to.
        summary: One line on what it finds (``shortDescription``).
        help: What to do about a result (``help``).
        severity: Its default severity (gives ``defaultConfiguration.level``).
    """

    id: str
    summary: str
    help: str = ""
    severity: str = "medium"

    def to_dict(self) -> dict[str, Any]:
        """The rule as SARIF JSON."""
        rule: dict[str, Any] = {
            "id": self.id,
            "shortDescription": {"text": self.summary},
            "defaultConfiguration": {"level": severity_level(self.severity)},
            "properties": {
                "security-severity": _SCORES[self.severity],
                "tags": ["security"],
            },
        }
        if self.help:
            rule["help"] = {"text": self.help}
        return rule


@dataclass(frozen=True)
class SarifResult:
    """One result of a run.

    Attributes:
        rule_id: The rule it breaks (must be a rule of the run).
        message: What was found.
        severity: critical, high, medium, low or info (gives ``level``).
        uri: The file, relative to the scanned folder (POSIX separators), if any.
        line: 1-based line in the file, if known.
        properties: Extra JSON-ready data (``offending``, ``member`` …).
    """

    rule_id: str
    message: str
    severity: str
    uri: str | None = None
    line: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, rule_index: int) -> dict[str, Any]:
        """The result as SARIF JSON, pointing at rule ``rule_index`` of its run."""
        result: dict[str, Any] = {
            "ruleId": self.rule_id,
            "ruleIndex": rule_index,
            "level": severity_level(self.severity),
            "message": {"text": self.message},
        }
        if self.uri is not None:
            location: dict[str, Any] = {
                "artifactLocation": {"uri": _relative_uri(self.uri), "uriBaseId": _BASE_ID}
            }
            if self.line is not None:
                if self.line < 1:
                    raise SecurityError(f"SARIF result line {self.line} must be 1 or more")
                location["region"] = {"startLine": self.line}
            result["locations"] = [{"physicalLocation": location}]
        props = {"severity": self.severity, **dict(self.properties)}
        result["properties"] = {k: v for k, v in props.items() if v is not None}
        return result


@dataclass
class SarifRun:
    """One run of one tool.

    Attributes:
        tool: The tool's name (``tool.driver.name``).
        version: The tool's version.
        rules: The rules its results refer to.
        results: What it found.
        root: The folder result URIs are relative to (a local path or a URI), if any.
        information_uri: Where the tool is documented, if anywhere.
    """

    tool: str
    version: str
    rules: list[SarifRule] = field(default_factory=list)
    results: list[SarifResult] = field(default_factory=list)
    root: str | None = None
    information_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run as SARIF JSON.

        Raises:
            SecurityError: A result refers to a rule the run does not have, or two rules share
                an id.
        """
        index: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.id in index:
                raise SecurityError(f"SARIF run of {self.tool}: rule {rule.id!r} is listed twice")
            index[rule.id] = i
        results = []
        for result in self.results:
            if result.rule_id not in index:
                raise SecurityError(
                    f"SARIF run of {self.tool}: result refers to unknown rule {result.rule_id!r}"
                )
            results.append(result.to_dict(index[result.rule_id]))
        driver: dict[str, Any] = {
            "name": self.tool,
            "version": self.version,
            "rules": [rule.to_dict() for rule in self.rules],
        }
        if self.information_uri:
            driver["informationUri"] = self.information_uri
        run: dict[str, Any] = {"tool": {"driver": driver}, "results": results}
        if self.root is not None:
            run["originalUriBaseIds"] = {_BASE_ID: {"uri": _root_uri(self.root)}}
        return run


@dataclass
class SarifLog:
    """A SARIF 2.1.0 log: the runs of every check, in the order they were added."""

    runs: list[SarifRun] = field(default_factory=list)

    def add_run(self, run: SarifRun) -> SarifRun:
        """Append a run; return it."""
        self.runs.append(run)
        return run

    def to_dict(self) -> dict[str, Any]:
        """The log as SARIF JSON."""
        return {
            "$schema": SARIF_SCHEMA_URI,
            "version": SARIF_VERSION,
            "runs": [run.to_dict() for run in self.runs],
        }

    def to_json(self) -> str:
        """The log as JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: Path | str) -> Path:
        """Write the log to ``path`` (parent folders created); return the path.

        Raises:
            SecurityError: The file cannot be written.
        """
        target = Path(path)
        text = self.to_json()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise SecurityError(f"cannot write the SARIF log {target}: {exc.strerror}") from None
        return target


def scan_report_run(report: ScanReport, *, root: str | None = None) -> SarifRun:
    """The SARIF run of a model scan: every rule of the scanner, one result per finding.

    Args:
        report: The scan.
        root: The folder the findings' files are relative to (default: the scanned target).
    """
    rules = [SarifRule(r.id, r.summary, r.help, r.severity) for r in RULES.values()]
    results = [
        SarifResult(
            rule_id=f.rule_id,
            message=f.message,
            severity=f.severity,
            uri=f.file,
            properties={"offending": f.offending, "member": f.member},
        )
        for f in report.findings
    ]
    base = root if root is not None else _folder_of(report)
    return SarifRun(
        tool=report.scanner,
        version=report.version,
        rules=rules,
        results=results,
        root=base,
    )


def _folder_of(report: ScanReport) -> str:
    target = Path(report.target)
    # A single file's findings are named by its file name: the base is its folder.
    if len(report.files) == 1 and report.files[0] == target.name and not target.is_dir():
        target = target.parent
    return str(target)


def _relative_uri(path: str) -> str:
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        raise SecurityError(f"SARIF result file {path!r} must be relative to the scanned folder")
    return quote(posix.as_posix(), safe="/")


def _root_uri(root: str) -> str:
    if _SCHEME.match(root):
        return root if root.endswith("/") else root + "/"
    return Path(root).resolve().as_uri() + "/"


def merge_runs(logs: Iterable[SarifLog] | Sequence[SarifLog]) -> SarifLog:
    """One log holding the runs of several, in order."""
    merged = SarifLog()
    for log in logs:
        merged.runs.extend(log.runs)
    return merged
