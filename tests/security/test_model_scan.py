"""Malicious model files and the scanner that must find them: each with the right severity,
file, and the global or type at fault. Nothing here is ever loaded."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import runpy
import socket
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from opsloop.secops import Finding, scan_path
from tests.registry.forge import evil_pipeline
from tests.registry.trust_aliases import double

SYSTEM = {"posix.system", "os.system", "nt.system"}


class Payload:
    """Unpickling it calls ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _only(findings: tuple[Finding, ...], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule]


@pytest.mark.parametrize("protocol", range(6))
def test_os_system_pickle_of_every_protocol_is_critical(tmp_path: Path, protocol: int) -> None:
    # No pickle suffix: the content alone gives it away.
    (tmp_path / "weights.bin").write_bytes(
        pickle.dumps(Payload(os.system, "touch pwned"), protocol=protocol)
    )
    report = scan_path(tmp_path)
    (hit,) = _only(report.findings, "pickle/dangerous-global")
    assert hit.severity == "critical"
    assert hit.file == "weights.bin"
    assert hit.offending in SYSTEM
    assert report.status == "failed"
    assert not (tmp_path / "pwned").exists()


def test_hand_written_protocol_0_global_is_found(tmp_path: Path) -> None:
    (tmp_path / "model.dat").write_bytes(b"csubprocess\ncheck_output\n(S'id'\ntR.")
    (hit,) = _only(scan_path(tmp_path).findings, "pickle/dangerous-global")
    assert (hit.offending, hit.file) == ("subprocess.check_output", "model.dat")


@pytest.mark.parametrize(
    ("func", "args", "rule", "severity", "offending"),
    [
        (builtins.eval, ("__import__('os').system('id')",), "pickle/dangerous-global", "critical",
         "builtins.eval"),
        (builtins.exec, ("import os",), "pickle/dangerous-global", "critical", "builtins.exec"),
        (runpy.run_path, ("/tmp/x.py",), "pickle/dangerous-global", "critical", "runpy.run_path"),
        (socket.create_connection, (("127.0.0.1", 9),), "pickle/network-global", "high",
         "socket.create_connection"),
    ],
)  # fmt: skip
def test_dangerous_globals_have_their_severity(
    tmp_path: Path, func: Any, args: tuple[Any, ...], rule: str, severity: str, offending: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.pkl").write_bytes(pickle.dumps(Payload(func, *args), protocol=4))
    report = scan_path(tmp_path)
    (hit,) = _only(report.findings, rule)
    assert (hit.severity, hit.file, hit.offending) == (severity, "sub/model.pkl", offending)
    assert report.status == "failed"


def test_pickle_nested_in_a_zip_names_the_archive_and_the_member(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("deep/payload.pkl", pickle.dumps(Payload(os.system, "id")))
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", "nothing to see")
        z.writestr("nested.zip", inner.getvalue())
    (hit,) = _only(scan_path(tmp_path).findings, "pickle/dangerous-global")
    assert hit.severity == "critical"
    assert hit.file == "bundle.zip"
    assert hit.member == "nested.zip/deep/payload.pkl"
    assert hit.offending in SYSTEM


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz"])
def test_joblib_dump_with_a_payload_is_critical(tmp_path: Path, compress: Any) -> None:
    model = {"weights": np.arange(1000.0), "hook": Payload(os.system, "id")}
    joblib.dump(model, tmp_path / "model.joblib", compress=compress)
    report = scan_path(tmp_path)
    (hit,) = _only(report.findings, "pickle/dangerous-global")
    assert (hit.severity, hit.file) == ("critical", "model.joblib")
    assert hit.offending in SYSTEM


def test_object_array_in_npy_hides_a_pickle(tmp_path: Path) -> None:
    array = np.array([Payload(os.system, "id")], dtype=object)
    np.save(tmp_path / "data.npy", array, allow_pickle=True)
    (hit,) = _only(scan_path(tmp_path).findings, "pickle/dangerous-global")
    assert (hit.severity, hit.file) == ("critical", "data.npy")


def test_skops_file_naming_os_system_is_critical(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(sio.dumps(evil_pipeline()))
    report = scan_path(tmp_path)
    (hit,) = _only(report.findings, "skops/denied-type")
    assert (hit.severity, hit.file) == ("critical", "model.skops")
    assert hit.offending in SYSTEM
    assert report.status == "failed"


def test_skops_file_with_an_untrusted_type_is_high(tmp_path: Path) -> None:
    model = Pipeline([("double", FunctionTransformer(double))]).fit(pd.DataFrame({"x": [1.0]}))
    (tmp_path / "model.skops").write_bytes(sio.dumps(model))
    report = scan_path(tmp_path)
    (hit,) = _only(report.findings, "skops/untrusted-type")
    assert (hit.severity, hit.file) == ("high", "model.skops")
    assert hit.offending == "tests.registry.trust_aliases.double"
    # Trusting it explicitly, as opsloop.yaml can, clears it; os.system never clears.
    assert scan_path(tmp_path, trusted_types=[hit.offending]).status == "passed"


def test_symlink_is_reported_and_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(Payload(os.system, "id")))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").symlink_to(outside)
    report = scan_path(folder)
    assert [(f.rule_id, f.file) for f in report.findings] == [("file/symlink", "model.pkl")]


def test_a_zip_bomb_member_is_not_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import opsloop.secops.scan as scan  # noqa: PLC0415

    monkeypatch.setattr(scan, "MAX_EXPANDED_BYTES", 1 << 16)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.pkl", b"\0" * (1 << 20))
    (hit,) = scan_path(tmp_path).findings
    assert (hit.rule_id, hit.file, hit.member) == ("archive/unreadable", "bomb.zip", "zeros.pkl")
