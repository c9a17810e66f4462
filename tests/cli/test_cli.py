"""The CLI as a user runs it: a real subprocess per command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def opsloop(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        full_env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    out = opsloop("init", "demo", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "created" in out.stdout
    return root / "demo"


def test_init_refuses_existing_project(scaffolded: Path) -> None:
    out = opsloop("init", "demo", "--dir", str(scaffolded), cwd=scaffolded.parent)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "already exists" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_pipeline_then_cached_rerun(scaffolded: Path) -> None:
    first = opsloop("run", "train", "-p", "n_rows=500", cwd=scaffolded)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "pipeline training finished" in first.stdout
    second = opsloop("run", "train", "-p", "n_rows=500", cwd=scaffolded)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("cached") >= 3
    listed = opsloop("runs", "list", cwd=scaffolded)
    assert listed.returncode == 0 and listed.stdout.count("training") >= 2
    run_id = next(
        line.split()[1] for line in listed.stdout.splitlines() if "training" in line and "│" in line
    )
    shown = opsloop("runs", "show", run_id, cwd=scaffolded)
    assert shown.returncode == 0, shown.stderr
    assert "make_data" in shown.stdout and "describe" in shown.stdout
    # With no id (or 'latest') it shows the newest run: the second, cached one.
    newest = opsloop("runs", "show", cwd=scaffolded)
    assert newest.returncode == 0, newest.stderr
    assert run_id in newest.stdout.splitlines()[0], newest.stdout
    assert opsloop("runs", "show", "latest", cwd=scaffolded).stdout == newest.stdout


def test_runs_show_latest_in_a_project_without_runs(tmp_path: Path) -> None:
    assert opsloop("init", "empty", cwd=tmp_path).returncode == 0
    out = opsloop("runs", "show", cwd=tmp_path / "empty")
    assert out.returncode == 1 and "no runs yet in this project" in out.stderr, out.stderr


def test_bad_parameter_and_unknown_pipeline(scaffolded: Path) -> None:
    out = opsloop("run", "train", "-p", "n_rows", cwd=scaffolded)
    assert out.returncode == 1 and "use -p key=value" in out.stderr
    out = opsloop("run", "nope", cwd=scaffolded)
    assert out.returncode == 1 and "unknown pipeline 'nope'" in out.stderr
    assert "hint:" in out.stderr


def test_invalid_spec_stops_everything(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: x\ntrain:\n  tune: {trials: many}\n")
    out = opsloop("runs", "list", cwd=tmp_path)
    assert out.returncode == 1
    assert "opsloop.yaml:3: field 'train.tune.trials'" in out.stderr
    assert not (tmp_path / ".opsloop").exists()
    debug = opsloop("--debug", "runs", "list", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_models_commands(tmp_path: Path) -> None:
    code = (
        "import opsloop, numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = pd.DataFrame({'a': np.arange(20.0), 'b': np.arange(20.0) % 3})\n"
        "y = (X.a > 9).astype(int)\n"
        "m = LogisticRegression().fit(X, y)\n"
        "for _ in range(2):\n"
        "    opsloop.register_model('churn', m, input_example=X.head())\n"
    )
    (tmp_path / "opsloop.yaml").write_text("project: m\n")
    made = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert opsloop("models", "alias", "set", "churn", "champion", "1", cwd=tmp_path).returncode == 0
    moved = opsloop("models", "alias", "set", "churn", "champion", "2", cwd=tmp_path)
    assert "churn@champion → v2 (was v1)" in moved.stdout
    listed = opsloop("models", "list", cwd=tmp_path)
    assert "churn" in listed.stdout and "champion→v2" in listed.stdout
    shown = opsloop("models", "show", "churn", cwd=tmp_path)
    assert "v1" in shown.stdout and "v2" in shown.stdout
    assert opsloop("models", "alias", "delete", "churn", "champion", cwd=tmp_path).returncode == 0
    missing = opsloop("models", "show", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "model 'nope' is not registered" in missing.stderr
    bad = opsloop("models", "alias", "set", "churn", "champion", "9", cwd=tmp_path)
    assert bad.returncode == 1 and "no version 9" in bad.stderr


def test_version() -> None:
    out = opsloop("--version", cwd=Path.cwd())
    assert out.returncode == 0 and out.stdout.startswith("opsloop ")
