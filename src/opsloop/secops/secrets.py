"""Committed secrets: scan a project tree with detect-secrets, honouring its baseline.

The scan runs detect-secrets (Yelp's library, every plugin it ships: AWS keys, private keys,
tokens of the common services, high-entropy strings, keywords such as ``password =``) over
the files of a project. A baseline file (``.secrets.baseline`` in the project, detect-secrets'
own format, made by ``detect-secrets scan > .secrets.baseline``) lists the secrets the team
has audited: a finding whose file, type and hashed secret are in it is *known*, every other
finding is *new*, and only new findings fail a check. When a baseline is present, its plugin
and filter settings are the ones used, as ``detect-secrets scan --baseline`` does.

opsloop's own control-plane API tokens (``opsloop_`` and 43 URL-safe characters) are found
too: detect-secrets has no plugin for them, and its custom plugins load from a file path that a
baseline must name, so the scan looks for their shape itself (:data:`opsloop.redact.API_TOKEN`).

Findings never carry the secret itself, only its SHA-1 hash (the baseline's ``hashed_secret``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from detect_secrets.core import baseline as ds_baseline
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings, transient_settings

from opsloop.errors import SecurityError
from opsloop.redact import API_TOKEN, API_TOKEN_PREFIX
from opsloop.secops.sarif import SarifResult, SarifRule, SarifRun

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "BASELINE_FILE",
    "SECRETS_RULE",
    "SecretFinding",
    "SecretsReport",
    "scan_secrets",
    "secrets_run",
]

BASELINE_FILE = ".secrets.baseline"
SECRETS_RULE = "OPSLOOP-SECRET-001"
SCANNER = "detect-secrets"
#: The finding type of an opsloop control-plane API token.
API_TOKEN_TYPE = "opsloop API Token"
# Folders that are not the project's own files: tool state, environments, caches.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".opsloop",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
    }
)
# detect-secrets keeps its settings in a process-wide object: one scan at a time.
_lock = threading.Lock()


@dataclass(frozen=True)
class SecretFinding:
    """A secret found in a file.

    Attributes:
        file: The file, relative to the scanned folder (POSIX separators).
        line: Its 1-based line.
        type: What kind of secret detect-secrets took it for (``AWS Access Key``).
        hashed_secret: SHA-1 of the secret, as in the baseline.
        known: The baseline lists it (audited; it does not fail a check).
    """

    file: str
    line: int
    type: str
    hashed_secret: str
    known: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "file": self.file,
            "line": self.line,
            "type": self.type,
            "hashed_secret": self.hashed_secret,
            "known": self.known,
        }


@dataclass
class SecretsReport:
    """The result of :func:`scan_secrets`.

    Attributes:
        root: The scanned folder.
        findings: Every secret found, known or new, by file and line.
        files: How many files were scanned.
        baseline: The baseline file used, if any.
        scanner: ``detect-secrets``.
        version: Its version.
    """

    root: str
    findings: list[SecretFinding] = field(default_factory=list)
    files: int = 0
    baseline: str | None = None
    scanner: str = SCANNER
    version: str = ""

    @property
    def new(self) -> list[SecretFinding]:
        """The findings the baseline does not list: each one fails a check."""
        return [f for f in self.findings if not f.known]

    @property
    def passed(self) -> bool:
        """No new secrets."""
        return not self.new

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "root": self.root,
            "scanner": self.scanner,
            "version": self.version,
            "baseline": self.baseline,
            "files": self.files,
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
        }


def _files(root: Path, skip: set[Path]) -> Iterator[str]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if path in skip or path.is_symlink() or not path.is_file():
                continue
            yield PurePosixPath(path.relative_to(root).as_posix()).as_posix()


def _api_tokens(folder: Path, name: str) -> Iterator[tuple[int, str]]:
    """``(line, SHA-1)`` of every control-plane API token in one file."""
    try:
        data = (folder / name).read_bytes()
    except OSError:
        return
    if API_TOKEN_PREFIX.encode() not in data:
        return
    text = data.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        for match in API_TOKEN.finditer(line):
            # SHA-1, as detect-secrets hashes the secrets of its baselines.
            yield number, hashlib.sha1(match.group(0).encode()).hexdigest()


def _load_baseline(path: Path) -> dict[str, Any]:
    try:
        return ds_baseline.load_from_file(str(path))
    except Exception as exc:  # detect-secrets raises its own and json's errors
        raise SecurityError(
            f"secrets baseline {path} is not a detect-secrets baseline: {exc}",
            hint="make one with 'detect-secrets scan > .secrets.baseline'",
        ) from None


def scan_secrets(root: str | Path, *, baseline: str | Path | None = None) -> SecretsReport:
    """Scan the files under ``root`` for committed secrets.

    Args:
        root: The project folder (``.git``, ``.opsloop``, virtualenvs and caches are skipped).
        baseline: The detect-secrets baseline (default: ``root/.secrets.baseline`` when it
            exists). Its secrets are reported as known.

    Raises:
        SecurityError: ``root`` is not a folder, or the baseline cannot be read.
    """
    folder = Path(root).resolve()
    if not folder.is_dir():
        raise SecurityError(f"secrets scan: {root} is not a folder")
    base_path = Path(baseline) if baseline is not None else folder / BASELINE_FILE
    if baseline is not None and not base_path.is_file():
        raise SecurityError(f"secrets baseline {baseline} does not exist")
    base_data = _load_baseline(base_path) if base_path.is_file() else None
    files = list(_files(folder, {base_path.resolve()}))
    with _lock:
        if base_data is not None:
            config = {
                "plugins_used": base_data.get("plugins_used", []),
                "filters_used": base_data.get("filters_used", []),
            }
            context = transient_settings(config)
        else:
            context = default_settings()
        with context:
            known = SecretsCollection.load_from_baseline(base_data) if base_data else None
            found = SecretsCollection(root=str(folder))
            for name in files:
                found.scan_file(name)
    known_keys = {(f, s.type, s.secret_hash) for f, s in known} if known is not None else set()
    findings = [
        SecretFinding(
            file=PurePosixPath(Path(name).as_posix()).as_posix(),
            line=secret.line_number,
            type=secret.type,
            hashed_secret=secret.secret_hash,
            known=(name, secret.type, secret.secret_hash) in known_keys,
        )
        for name, secret in found
    ]
    # A token a detect-secrets plugin already reported (high entropy) is not reported twice.
    seen = {(f.file, f.line, f.hashed_secret) for f in findings}
    findings += [
        SecretFinding(
            file=name,
            line=line,
            type=API_TOKEN_TYPE,
            hashed_secret=digest,
            known=(name, API_TOKEN_TYPE, digest) in known_keys,
        )
        for name in files
        for line, digest in _api_tokens(folder, name)
        if (name, line, digest) not in seen
    ]
    findings.sort(key=lambda f: (f.file, f.line, f.type))
    return SecretsReport(
        root=str(folder),
        findings=findings,
        files=len(files),
        baseline=str(base_path) if base_data is not None else None,
        version=package_version("detect-secrets"),
    )


def secrets_run(report: SecretsReport, *, include_known: bool = False) -> SarifRun:
    """The SARIF run of a secrets scan: one result per new secret (and per known one, as a
    note, with ``include_known``)."""
    rule = SarifRule(
        SECRETS_RULE,
        "A secret is committed to the project",
        "Remove the secret from the file and from history, rotate it, and reference it from "
        "opsloop.yaml as env:NAME or file:PATH; if it is a false positive, audit it into "
        f"{BASELINE_FILE} with 'detect-secrets audit'.",
        "high",
    )
    results = [
        SarifResult(
            rule_id=SECRETS_RULE,
            message=f"{f.type} {'(in the baseline)' if f.known else ''}".strip(),
            severity="info" if f.known else "high",
            uri=f.file,
            line=f.line,
            properties={"type": f.type, "hashed_secret": f.hashed_secret, "known": f.known},
        )
        for f in report.findings
        if include_known or not f.known
    ]
    return SarifRun(
        tool=report.scanner,
        version=report.version,
        rules=[rule],
        results=results,
        root=report.root,
        information_uri="https://github.com/Yelp/detect-secrets",
    )
