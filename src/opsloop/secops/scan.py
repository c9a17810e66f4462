"""Scan every file of a model folder for what would run code when it is loaded.

Nothing is loaded or unpickled: files are read as bytes and looked into.

* **Pickles** (by suffix or by content, of any protocol, also inside zip archives, ``.npy``
  arrays of objects and gzip/bz2/xz/zlib-compressed files such as compressed joblib dumps):
  the globals they import are read with picklescan's opcode walk, then rated. What runs
  processes or code (``os``, ``subprocess``, ``builtins.eval``/``exec``, ``runpy`` …) is
  critical, what reaches the network (``socket``, ``requests`` …) is high, any other global
  opsloop's denylist refuses is high, a global known to neither list is medium, and the
  pickle itself is low: opsloop never loads pickles, the registry refuses a folder with one.
* **skops files**: every type and function the file names is checked against the allow-list
  of :mod:`opsloop.secops.trust`, the one registration and loading enforce; a type that can
  never be trusted is critical, one that is not trusted is high.
* **Symbolic links** are reported (high) and never followed.

Other files (``MLmodel``, Parquet input examples, text) name nothing that loading imports.

A report fails when a finding is at or above ``fail_at`` (``high`` by default).
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

from opsloop.errors import SecurityError
from opsloop.secops.pickles import PICKLE_SUFFIXES, is_pickle
from opsloop.secops.skopsrefs import UnreadableSkopsFileError, is_skops_file, skops_references
from opsloop.secops.trust import check_extra_types, classify_types, is_denied

__all__ = [
    "RULES",
    "SCANNER_NAME",
    "SEVERITIES",
    "Finding",
    "Rule",
    "ScanReport",
    "ScanStatus",
    "Severity",
    "scan_bytes",
    "scan_path",
    "scan_status",
    "severity_at_least",
]

Severity = Literal["critical", "high", "medium", "low", "info"]
#: Severities, worst first.
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
ScanStatus = Literal["passed", "failed", "not scanned"]

SCANNER_NAME = "opsloop-model-scan"

#: How deep archives inside archives (or compressed files) are opened.
MAX_DEPTH = 4
#: Members of one archive looked into; past that the archive itself is a finding.
MAX_MEMBERS = 10_000
#: Bytes one archive member or decompressed file may expand to (a zip bomb stops here).
MAX_EXPANDED_BYTES = 1 << 31

# Roots of the modules whose globals reach the network rather than run code directly.
_NETWORK_ROOTS = frozenset(
    {
        "socket", "_socket", "ssl", "http", "httplib", "urllib", "urllib2", "requests",
        "aiohttp", "httpx", "ftplib", "smtplib", "imaplib", "poplib", "webbrowser", "xmlrpc",
        "socketserver", "telnetlib",
    }
)  # fmt: skip
_NPY_MAGIC = b"\x93NUMPY"
# The containers joblib writes its arrays with: harmless data holders, though opsloop's
# denylist (made for what a skops file may name) refuses the whole of joblib.
_FORMAT_GLOBALS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    }
)


@dataclass(frozen=True)
class Rule:
    """What one kind of finding means.

    Attributes:
        id: Stable identifier (``pickle/dangerous-global``), the SARIF rule id.
        severity: The severity of its findings.
        summary: One line on what it finds.
        help: What to do about it.
    """

    id: str
    severity: Severity
    summary: str
    help: str


_REPACKAGE = "re-package the model with opsloop.registry.save_model (skops format)"
_RULE_LIST = (
    Rule(
        "pickle/dangerous-global",
        "critical",
        "A pickle imports a global that runs processes or code when it is loaded",
        "never load this file; " + _REPACKAGE,
    ),
    Rule(
        "pickle/network-global",
        "high",
        "A pickle imports a global that reaches the network when it is loaded",
        "never load this file; " + _REPACKAGE,
    ),
    Rule(
        "pickle/denied-global",
        "high",
        "A pickle imports a global that opsloop's denylist never trusts",
        "never load this file; " + _REPACKAGE,
    ),
    Rule(
        "pickle/unknown-global",
        "medium",
        "A pickle imports a global that is not known to be safe",
        "check where the file comes from; " + _REPACKAGE,
    ),
    Rule(
        "pickle/unparsable",
        "medium",
        "A pickle stream could not be parsed to its end (globals after the break are unseen)",
        "check where the file comes from; " + _REPACKAGE,
    ),
    Rule(
        "pickle/file",
        "low",
        "A pickle file: loading any pickle can run arbitrary code, and opsloop never does",
        _REPACKAGE,
    ),
    Rule(
        "skops/denied-type",
        "critical",
        "A skops file names a type or function that can never be trusted",
        "never load this file; rebuild the model without it",
    ),
    Rule(
        "skops/untrusted-type",
        "high",
        "A skops file names a type or function that is not trusted",
        "trust it in opsloop.yaml (security.trusted_types) if it is safe, or rebuild the model",
    ),
    Rule(
        "skops/unreadable",
        "high",
        "A file that looks like a skops archive cannot be read",
        "fetch or package the model again",
    ),
    Rule(
        "archive/unreadable",
        "medium",
        "An archive or compressed file cannot be opened, or is too large or too deep to scan",
        "check where the file comes from",
    ),
    Rule(
        "file/symlink",
        "high",
        "A symbolic link in a model folder (never followed; the registry refuses it)",
        "copy the file into the folder instead of linking it",
    ),
)
#: Every rule, by id.
RULES: Mapping[str, Rule] = {rule.id: rule for rule in _RULE_LIST}


@dataclass(frozen=True)
class Finding:
    """One thing found in one file.

    Attributes:
        rule_id: The rule (see :data:`RULES`).
        severity: critical, high, medium, low or info.
        file: The file, relative to the scanned folder (POSIX separators).
        message: What was found, in one line.
        offending: The global or type at fault (``posix.system``), if any.
        member: Where inside the file, for archives (``inner/data.pkl``), if anywhere.
    """

    rule_id: str
    severity: Severity
    file: str
    message: str
    offending: str | None = None
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "file": self.file,
            "message": self.message,
            "offending": self.offending,
            "member": self.member,
        }


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning one folder (or file).

    Attributes:
        target: What was scanned, as given.
        scanner: Name of the scanner (:data:`SCANNER_NAME`).
        version: Its version (opsloop's).
        time: When the scan ran (UTC).
        files: The files scanned, relative to ``target``.
        findings: What was found, worst first.
        fail_at: The severity from which a finding fails the scan.
        engines: Versions of the libraries the scan used.
    """

    target: str
    scanner: str
    version: str
    time: dt.datetime
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    fail_at: Severity = "high"
    engines: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Literal["passed", "failed"]:
        """``failed`` when a finding is at or above ``fail_at``, else ``passed``."""
        failing = any(severity_at_least(f.severity, self.fail_at) for f in self.findings)
        return "failed" if failing else "passed"

    def counts(self) -> dict[str, int]:
        """Findings per severity (every severity, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        """What a model version keeps of the scan (JSON-ready)."""
        return {
            "status": self.status,
            "scanner": self.scanner,
            "version": self.version,
            "time": self.time.isoformat(),
            "fail_at": self.fail_at,
            "findings": self.counts(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data."""
        return {
            **self.summary(),
            "target": self.target,
            "engines": dict(self.engines),
            "files": list(self.files),
            "results": [f.to_dict() for f in self.findings],
        }


def severity_at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or worse.

    Raises:
        SecurityError: Either is not a severity.
    """
    return _rank(severity) <= _rank(threshold)


def scan_status(details: Mapping[str, Any] | None) -> ScanStatus:
    """The scan status recorded in a model version's ``details``: passed, failed or not scanned."""
    scan = (details or {}).get("scan")
    status = scan.get("status") if isinstance(scan, Mapping) else None
    return status if status in ("passed", "failed") else "not scanned"


def scan_path(
    path: Path | str,
    *,
    trusted_types: Sequence[str] = (),
    fail_at: Severity = "high",
) -> ScanReport:
    """Scan a folder (every file in it, recursively) or a single file.

    Args:
        path: The folder or file.
        trusted_types: Types trusted explicitly beyond the allow-list (for skops files), as
            the project's ``security.trusted_types``; each is checked like any such list.
        fail_at: The severity from which a finding fails the scan.

    Returns:
        The report; findings sorted worst first, then by file.

    Raises:
        SecurityError: ``path`` does not exist or cannot be read, or ``fail_at`` is not a
            severity.
        UntrustedTypeError: A type in ``trusted_types`` can never be trusted.
    """
    _rank(fail_at)
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise SecurityError(f"cannot scan {root}: no such file or folder")
    extra = check_extra_types(trusted_types, source="trusted types")
    started = dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    files: list[str] = []
    folder = root.is_dir() and not root.is_symlink()
    entries = _walk(root) if folder else [(root.name, root)]
    for rel, file in entries:
        files.append(rel)
        if file.is_symlink():
            findings.append(
                _finding(
                    "file/symlink", rel, f"{rel} is a symbolic link; it was not followed", None
                )
            )
            continue
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise SecurityError(f"cannot scan {file}: {exc.strerror}") from None
        findings += scan_bytes(data, rel, trusted_types=extra)
    return ScanReport(
        target=str(path),
        scanner=SCANNER_NAME,
        version=_version("opsloop"),
        time=started,
        files=tuple(files),
        findings=tuple(_sorted(findings)),
        fail_at=fail_at,
        engines={"picklescan": _version("picklescan"), "skops": _version("skops")},
    )


def scan_bytes(data: bytes, file: str, *, trusted_types: Sequence[str] = ()) -> list[Finding]:
    """Scan the content of one file, named ``file`` in the findings.

    Args:
        data: The file's bytes.
        file: Its path relative to the scanned folder.
        trusted_types: Types trusted explicitly beyond the allow-list, already checked with
            :func:`opsloop.secops.trust.check_extra_types`.
    """
    findings: list[Finding] = []
    _scan_blob(data, file, None, 0, list(trusted_types), findings.append)
    return _sorted(findings)


# -- one blob ---------------------------------------------------------------------------------


def _scan_blob(
    data: bytes,
    file: str,
    member: str | None,
    depth: int,
    extra: list[str],
    add: Callable[[Finding], None],
) -> None:
    where = file if member is None else f"{file}:{member}"
    name = PurePosixPath(member if member is not None else file).name
    if is_skops_file(data):
        _scan_skops(data, file, member, where, extra, add)
        _scan_zip(data, file, member, depth, extra, add, skip={"schema.json"})
    elif data.startswith(b"PK") and _is_zip(data):
        _scan_zip(data, file, member, depth, extra, add, skip=set())
    elif data.startswith(_NPY_MAGIC):
        _scan_npy(data, file, member, where, add)
    elif (expanded := _decompress(data)) is not None:
        if depth >= MAX_DEPTH:
            add(_finding("archive/unreadable", file, f"{where}: nested too deep", None, member))
        elif isinstance(expanded, str):
            add(_finding("archive/unreadable", file, f"{where}: {expanded}", None, member))
        else:
            inner = f"{member or name}[decompressed]"
            _scan_blob(expanded, file, inner, depth + 1, extra, add)
    elif PurePosixPath(name).suffix.lower() in PICKLE_SUFFIXES or is_pickle(data):
        _scan_pickle(data, file, member, where, add)


def _scan_pickle(
    data: bytes, file: str, member: str | None, where: str, add: Callable[[Finding], None]
) -> None:
    from picklescan.scanner import scan_pickle_bytes  # noqa: PLC0415 (only when a pickle is found)

    add(_finding("pickle/file", file, f"{where} is a pickle", None, member))
    result = scan_pickle_bytes(io.BytesIO(data), where)
    rated = {(g.module, g.name): g.safety.value for g in result.globals}
    if result.scan_err:
        add(
            _finding(
                "pickle/unparsable",
                file,
                f"{where}: the pickle stream breaks before its end (raw bytes, such as "
                "joblib's arrays, follow); the rest was swept for imports",
                None,
                member,
            )
        )
        # picklescan stops at the first bytes that are not an opcode; joblib writes each
        # array's raw bytes into the stream and carries on pickling after them, so a global
        # named after an array would go unseen. The sweep finds every literal import.
        for module, name in sorted(_sweep_globals(data) - set(rated)):
            probe = b"c" + module.encode() + b"\n" + name.encode() + b"\n."
            swept = scan_pickle_bytes(io.BytesIO(probe), where).globals
            rated[(module, name)] = swept[0].safety.value if swept else "suspicious"
    for (module, name), safety in sorted(rated.items()):
        dotted = f"{module}.{name}"
        if dotted in _FORMAT_GLOBALS:
            continue
        if safety == "dangerous":
            root = module.split(".", 1)[0]
            rule = "pickle/network-global" if root in _NETWORK_ROOTS else "pickle/dangerous-global"
            text = f"{where} imports {dotted}, which can run when the pickle is loaded"
        elif safety == "suspicious":
            if is_denied(dotted):
                rule = "pickle/denied-global"
                text = f"{where} imports {dotted}, which opsloop never trusts"
            else:
                rule = "pickle/unknown-global"
                text = f"{where} imports {dotted}, which is not known to be safe"
        else:
            continue
        add(_finding(rule, file, text, dotted, member))


_GLOBAL_OP = re.compile(rb"[ci]([A-Za-z_][\w.]{0,255})\n([A-Za-z_][\w.]{0,255})\n")
_NAME = re.compile(r"[A-Za-z_][\w.]{0,255}")


def _sweep_globals(data: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a GLOBAL, INST or STACK_GLOBAL opcode names literally anywhere in
    ``data``, whatever comes before it."""
    found = {(m.decode(), n.decode()) for m, n in _GLOBAL_OP.findall(data)}
    # STACK_GLOBAL: two SHORT_BINUNICODE/BINUNICODE strings, each maybe memoized, then 0x93.
    # Walked forward from every string opcode: one cheap check per candidate byte.
    for opcode in (b"\x8c", b"X"):
        pos = data.find(opcode)
        while pos != -1:
            first = _string_at(data, pos)
            if first is not None:
                second = _string_at(data, _skip_memo(data, first[1]))
                if second is not None and data[_skip_memo(data, second[1]) :][:1] == b"\x93":
                    found.add((first[0], second[0]))
            pos = data.find(opcode, pos + 1)
    return found


def _string_at(data: bytes, pos: int) -> tuple[str, int] | None:
    """A SHORT_BINUNICODE or BINUNICODE opcode at ``pos`` holding a dotted name: (text, end)."""
    op = data[pos : pos + 1]
    if op == b"\x8c" and pos + 1 < len(data):
        length, start = data[pos + 1], pos + 2
    elif op == b"X" and pos + 5 <= len(data):
        length, start = int.from_bytes(data[pos + 1 : pos + 5], "little"), pos + 5
        if length > 256:
            return None
    else:
        return None
    raw = data[start : start + length]
    if len(raw) != length or not raw.isascii():
        return None
    text = raw.decode("ascii")
    return (text, start + length) if _NAME.fullmatch(text) else None


def _skip_memo(data: bytes, pos: int) -> int:
    # MEMOIZE (0x94), BINPUT (q + 1 byte) or LONG_BINPUT (r + 4 bytes) at ``pos``.
    op = data[pos : pos + 1]
    return pos + {b"\x94": 1, b"q": 2, b"r": 5}.get(op, 0)


def _scan_skops(
    data: bytes,
    file: str,
    member: str | None,
    where: str,
    extra: list[str],
    add: Callable[[Finding], None],
) -> None:
    try:
        refs = skops_references(data)
    except UnreadableSkopsFileError as exc:
        add(_finding("skops/unreadable", file, f"{where}: {exc.message}", None, member))
        return
    for name, verdict in sorted(classify_types(refs, extra=extra).items()):
        if verdict == "denied":
            text = f"{where} names {name}, which can never be trusted"
            add(_finding("skops/denied-type", file, text, name, member))
        elif verdict == "untrusted":
            text = f"{where} names {name}, which is not trusted"
            add(_finding("skops/untrusted-type", file, text, name, member))


def _scan_zip(
    data: bytes,
    file: str,
    member: str | None,
    depth: int,
    extra: list[str],
    add: Callable[[Finding], None],
    *,
    skip: set[str],
) -> None:
    where = file if member is None else f"{file}:{member}"
    if depth >= MAX_DEPTH:
        add(_finding("archive/unreadable", file, f"{where}: nested too deep", None, member))
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir() and i.filename not in skip]
            if len(infos) > MAX_MEMBERS:
                text = f"{where}: more than {MAX_MEMBERS} members"
                add(_finding("archive/unreadable", file, text, None, member))
                return
            for info in infos:
                inner = info.filename if member is None else f"{member}/{info.filename}"
                if info.file_size > MAX_EXPANDED_BYTES:
                    text = f"{where}: {info.filename} expands past {MAX_EXPANDED_BYTES} bytes"
                    add(_finding("archive/unreadable", file, text, None, inner))
                    continue
                with archive.open(info) as stream:
                    content = stream.read(MAX_EXPANDED_BYTES + 1)
                if len(content) > MAX_EXPANDED_BYTES:
                    text = f"{where}: {info.filename} expands past {MAX_EXPANDED_BYTES} bytes"
                    add(_finding("archive/unreadable", file, text, None, inner))
                    continue
                _scan_blob(content, file, inner, depth + 1, extra, add)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        # Encrypted members, unknown compression, a broken central directory …
        text = f"{where}: cannot be opened as a zip archive: {exc}"
        add(_finding("archive/unreadable", file, text, None, member))


def _scan_npy(
    data: bytes, file: str, member: str | None, where: str, add: Callable[[Finding], None]
) -> None:
    import numpy as np  # noqa: PLC0415 (only for .npy files)

    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            _shape, _order, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            _shape, _order, dtype = np.lib.format.read_array_header_2_0(stream)
    except Exception as exc:
        # numpy raises ValueError and others for a broken header.
        text = f"{where}: not a readable .npy array: {type(exc).__name__}"
        add(_finding("archive/unreadable", file, text, None, member))
        return
    if dtype.hasobject:
        # An array of objects is stored as a pickle after the header.
        _scan_pickle(data[stream.tell() :], file, member, f"{where} (object array)", add)


def _decompress(data: bytes) -> bytes | str | None:
    """The expanded content of a gzip, bz2, xz or zlib stream; None for anything else; a
    message when it is one but cannot be expanded."""
    opener: Any
    # The openers are closed by the "with" below.
    if data.startswith(b"\x1f\x8b"):
        opener = gzip.GzipFile(fileobj=io.BytesIO(data))
    elif data.startswith(b"BZh"):
        opener = bz2.BZ2File(io.BytesIO(data))
    elif data.startswith(b"\xfd7zXZ\x00"):
        opener = lzma.LZMAFile(io.BytesIO(data))  # noqa: SIM115
    elif len(data) > 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        stream = zlib.decompressobj()
        try:
            out = stream.decompress(data, MAX_EXPANDED_BYTES + 1)
        except zlib.error:
            return None  # a text file that starts with "x" and a lucky byte
        return "expands past the scan limit" if len(out) > MAX_EXPANDED_BYTES else out
    else:
        return None
    try:
        with opener as f:
            out = f.read(MAX_EXPANDED_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        return f"cannot be decompressed: {exc}"
    return "expands past the scan limit" if len(out) > MAX_EXPANDED_BYTES else out


def _is_zip(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)):
            return True
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


# -- helpers ----------------------------------------------------------------------------------


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` (relative POSIX path, path), sorted; links not followed."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        names = list(filenames) + [d for d in dirnames if (here / d).is_symlink()]
        for name in names:
            file = here / name
            found.append((file.relative_to(root).as_posix(), file))
    return sorted(found)


def _finding(
    rule_id: str, file: str, message: str, offending: str | None, member: str | None = None
) -> Finding:
    return Finding(
        rule_id=rule_id,
        severity=RULES[rule_id].severity,
        file=file,
        message=message,
        offending=offending,
        member=member,
    )


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings, key=lambda f: (_rank(f.severity), f.file, f.member or "", f.rule_id, f.message)
    )


def _rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise SecurityError(
            f"unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}"
        ) from None


def _version(distribution: str) -> str:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"
