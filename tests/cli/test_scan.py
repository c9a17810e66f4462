"""``opsloop scan`` and the security column of ``opsloop models show``, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import opsloop

# A real subprocess per command: a few seconds each.
pytestmark = pytest.mark.slow


def test_scan_registered_version_and_models_show(tmp_path: Path) -> None:
    code = (
        "import opsloop, numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = pd.DataFrame({'a': np.arange(20.0), 'b': np.arange(20.0) % 3})\n"
        "m = LogisticRegression().fit(X, (X.a > 9).astype(int))\n"
        "opsloop.register_model('churn', m, input_example=X.head(), alias='champion')\n"
    )
    (tmp_path / "opsloop.yaml").write_text("project: m\n")
    made = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    shown = opsloop("models", "show", "churn", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "scan passed" in shown.stdout and "signed (key" in shown.stdout
    assert "admitted" in shown.stdout

    # A version recorded without the registry (no scan, no signature) is shown refused, with why.
    bare = (
        "import opsloop\n"
        "store = opsloop.current_project().store\n"
        "v = store.models.get_version('churn', 1)\n"
        "store.models.create_version('churn', artifact_digest=v.artifact_digest, details={})\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", bare], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    shown = opsloop("models", "show", "churn", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert "unsigned" in flat and "scan not scanned" in flat
    assert "refused" in flat and "not signed" in flat

    for uri in ("models:/churn/1", "models:/churn@champion"):
        out = opsloop("scan", uri, "--sarif", str(tmp_path / "out.sarif"), cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "passed: 3 files scanned, no findings" in out.stdout
    log = json.loads((tmp_path / "out.sarif").read_text())
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["originalUriBaseIds"]["SCANROOT"]["uri"] == "models:/churn@champion/"

    missing = opsloop("scan", "models:/churn/7", cwd=tmp_path)
    assert missing.returncode == 1 and "no version 7" in missing.stderr


def test_scan_folder_with_a_malicious_pickle_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    out = opsloop("scan", str(folder), "--sarif", str(tmp_path / "s.sarif"), cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "critical" in out.stdout and "os.system" in out.stdout and "model.pkl" in out.stdout
    assert "failed" in out.stdout
    log = json.loads((tmp_path / "s.sarif").read_text())
    levels = {r["ruleId"]: r["level"] for r in log["runs"][0]["results"]}
    assert levels["pickle/dangerous-global"] == "error"
    assert not (tmp_path / "pwned").exists()
    # The threshold is the caller's; a bad one is named.
    bad = opsloop("scan", str(folder), "--fail-at", "nope", cwd=tmp_path)
    assert bad.returncode == 1 and "unknown severity 'nope'" in bad.stderr
    gone = opsloop("scan", str(tmp_path / "gone"), cwd=tmp_path)
    assert gone.returncode == 1 and "no such file or folder" in gone.stderr
