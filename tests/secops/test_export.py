"""``opsloop keys`` and ``opsloop models export``, checked with the OpenSSF command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.context import Project
from opsloop.registry import load_model, register_model
from opsloop.secops import KeyRing, SignatureError

MODEL_SIGNING = (
    shutil.which("model_signing", path=str(Path(sys.executable).parent)) or "model_signing"
)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    return subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def opsloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "opsloop", *args, cwd=cwd)


def verify(out: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return run(
        MODEL_SIGNING,
        "verify",
        "key",
        "--public_key",
        str(key),
        "--signature",
        str(out / "model.sig"),
        str(out / "model"),
        cwd=out,
    )


@pytest.fixture
def registered(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    # Keys of this test only: rotating them must not touch other tests' projects.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30)})
    register_model("churn", LogisticRegression().fit(x, x["a"] > 0), input_example=x.head(2))
    return project


def test_an_export_verifies_with_model_signing_and_fails_after_any_byte_changes(
    registered: Project, tmp_path: Path
) -> None:
    key, out = tmp_path / "key.pub", tmp_path / "export"
    made = opsloop("keys", "export-public", "--out", str(key), cwd=registered.dir)
    assert made.returncode == 0, made.stderr
    exported = opsloop("models", "export", "models:/churn/1", "--out", str(out), cwd=registered.dir)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    files = sorted(p for p in (out / "model").rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"MLmodel", "model.skops"}
    ok = verify(out, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout

    for file in files:
        original = file.read_bytes()
        changed = bytearray(original)
        changed[-1] ^= 0x01
        file.write_bytes(bytes(changed))
        bad = verify(out, key)
        assert bad.returncode != 0, f"{file.name} changed and still verified"
        assert "Verification failed" in bad.stdout + bad.stderr
        file.write_bytes(original)
    (out / "model" / "extra.txt").write_text("x")
    assert verify(out, key).returncode != 0


def test_export_refuses_to_overwrite(registered: Project, tmp_path: Path) -> None:
    (tmp_path / "export" / "model").mkdir(parents=True)
    out = opsloop(
        "models", "export", "models:/churn/1", "--out", str(tmp_path / "export"), cwd=registered.dir
    )
    assert out.returncode == 1
    assert "exists already" in out.stdout + out.stderr


def test_keys_show_create_rotate_remove(registered: Project) -> None:
    listed = opsloop("keys", cwd=registered.dir)
    assert listed.returncode == 0, listed.stderr
    old = KeyRing("demo").signing_key(create=False).public
    assert old.short_id in listed.stdout and "signing" in listed.stdout
    again = opsloop("keys", "create", cwd=registered.dir)
    assert again.returncode == 1 and "already has a signing key" in again.stdout + again.stderr
    rotated = opsloop("keys", "rotate", cwd=registered.dir)
    assert rotated.returncode == 0, rotated.stderr
    assert f"{old.short_id} retired, still trusted" in rotated.stdout
    # The version signed with the retired key still loads; a new one is signed with the new.
    assert load_model("models:/churn/1").version == "1"
    removed = opsloop("keys", "remove", old.key_id[:12], cwd=registered.dir)
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(SignatureError, match=f"signed by an unknown key {old.short_id}"):
        load_model("models:/churn/1")
