"""A newcomer's first hour with the CLI: the tour's commands, and the first mistakes.

Every command runs as a user runs it, in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import ingest_alerts, resolve
from opsloop.aiops.lineage import LineageGraph
from opsloop.context import open_project

LONG = "a-folder-name-long-enough-that-a-path-through-it-passes-eighty-columns"


def opsloop(
    *args: str, cwd: Path, env: dict[str, str] | None = None, columns: str | None = "250"
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("COLUMNS", None)
    if columns is not None:
        full_env["COLUMNS"] = columns
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


def lifecycle_project(folder: Path) -> Path:
    """A small declared lifecycle (one candidate, two trials)."""
    rng = np.random.default_rng(0)
    n = 400
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    logit = -0.08 * (tenure - 36) + (plan == "basic") * 1.2
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "plan": plan,
            "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    (folder / "data").mkdir(parents=True)
    frame.to_csv(folder / "data" / "customers.csv", index=False)
    spec = {
        "project": "firsthour",
        "problem": {"type": "classification", "target": "churned", "metric": "roc_auc"},
        "data": {"source": "data/customers.csv"},
        "train": {
            "candidates": ["logistic_regression"],
            "tune": {"trials": 2, "timeout_s": 30, "cv": 2},
        },
        "evaluate": {"gates": {"roc_auc": {"min": 0.55}}},
        "register": {"model": "churn"},
    }
    (folder / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    return folder


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A project trained once by ``opsloop run``, its output going to a pipe (no terminal,
    no COLUMNS: as in a log file)."""
    folder = lifecycle_project(tmp_path_factory.mktemp("first") / LONG)
    out = opsloop("run", "--executor", "inline", cwd=folder, columns=None)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return folder, out


# -- outside a project -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show", "abc"],
        ["models", "list"],
        ["models", "show", "churn"],
        ["models", "alias", "set", "churn", "champion", "1"],
        ["run"],
        ["run", "train"],
        ["incidents", "list"],
        ["monitor", "prune"],
        ["status"],
    ],
    ids="-".join,
)
def test_outside_a_project_commands_say_so_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    out = opsloop(*command, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith(f"error: no opsloop.yaml here or above ({tmp_path}); see "), (
        out.stderr
    )
    assert "opsloop init" in out.stderr and "opsloop quickstart" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_named_folder_that_is_no_project_is_refused(tmp_path: Path) -> None:
    out = opsloop("-C", str(tmp_path / "nowhere"), "runs", "list", cwd=tmp_path)
    assert out.returncode == 1
    assert f"{tmp_path / 'nowhere'} does not exist: it is not an opsloop project" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_works_outside_a_project_and_then_commands_work(tmp_path: Path) -> None:
    made = opsloop("init", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    listed = opsloop("runs", "list", cwd=tmp_path / "demo")
    assert listed.returncode == 0, listed.stderr
    assert "no runs" in listed.stdout


# -- near misses -------------------------------------------------------------------------


def test_a_misspelt_spec_key_names_the_key_it_nearly_is(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text(
        "project: x\ntrian:\n  candidates: [logistic_regression]\n"
        "train:\n  tune: {trials: 3, timout_s: 4}\n"
    )
    out = opsloop("runs", "list", cwd=tmp_path)
    assert out.returncode == 1
    assert "opsloop.yaml:2: field 'trian': unknown key; did you mean 'train'?" in out.stderr
    assert "'train.tune.timout_s': unknown key; did you mean 'timeout_s'?" in out.stderr
    assert not (tmp_path / ".opsloop").exists()


def test_an_unknown_pipeline_names_the_project_and_its_pipelines(tmp_path: Path) -> None:
    made = opsloop("init", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"
    out = opsloop("run", "trian", cwd=project)
    assert out.returncode == 1
    assert f"unknown pipeline 'trian' in project 'demo' ({project})" in out.stderr
    assert "declares train; did you mean 'train'?" in out.stderr

    other = lifecycle_project(tmp_path / "other")
    out = opsloop("run", "train", cwd=other)
    assert out.returncode == 1
    assert f"unknown pipeline 'train' in project 'firsthour' ({other})" in out.stderr
    assert "declares no pipelines; 'opsloop run' with no name runs its lifecycle" in out.stderr


# -- the tour, on a trained project ------------------------------------------------------


def test_runs_list_shows_the_declared_metric_first_and_what_it_hid(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = trained
    out = opsloop("runs", "list", cwd=folder)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "lifecycle" in line)
    metrics = row.split("│")[-2].strip()
    assert metrics.startswith("test_roc_auc="), row
    assert "2 tuning trials hidden; --all shows them" in out.stdout
    every = opsloop("runs", "list", "--all", cwd=folder)
    assert every.stdout.count("trial") >= 2 and "hidden" not in every.stdout


def test_models_show_names_run_metrics_and_gates_of_every_version(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = trained
    project = open_project(folder)
    try:
        version = project.store.models.get_version("churn", 1)
        run = project.store.runs.list(kind="pipeline", limit=1)[0]
    finally:
        project.close()
    assert version.run_id == run.id
    out = opsloop("models", "show", "churn", cwd=folder)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ v1"))
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[3] == run.id[:12]
    assert cells[4].startswith("roc_auc=")
    assert cells[5] == "passed (2)"


def test_runs_show_names_no_commit_outside_git(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = trained
    listed = opsloop("runs", "list", cwd=folder)
    run_id = next(line.split()[1] for line in listed.stdout.splitlines() if "lifecycle" in line)
    shown = opsloop("runs", "show", run_id, cwd=folder)
    assert "commit - (the project is not in a Git repository)" in shown.stdout


def test_alias_set_refuses_a_rollback_unless_asked(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = trained
    project = open_project(folder)
    try:
        # A second version (v1's files and record: signed and scanned, so admitted), made
        # champion: moving back to v1 is now a rollback.
        v1 = project.store.models.get_version("churn", 1)
        project.store.models.create_version(
            "churn", artifact_digest=v1.artifact_digest, details=dict(v1.details), alias="champion"
        )
    finally:
        project.close()
    out = opsloop("models", "alias", "set", "churn", "champion", "1", cwd=folder)
    assert out.returncode == 1
    assert "churn@champion is v2; moving it back to v1 is a rollback" in out.stderr
    assert "--allow-rollback" in out.stderr
    done = opsloop(
        "models", "alias", "set", "churn", "champion", "1", "--allow-rollback", cwd=folder
    )
    assert done.returncode == 0, done.stderr
    assert "churn@champion → v1 (was v2) rollback" in done.stdout
    forward = opsloop("models", "alias", "set", "churn", "champion", "2", cwd=folder)
    assert forward.returncode == 0 and "(was v1)" in forward.stdout


# -- output in a log file ----------------------------------------------------------------


def test_log_file_output_is_full_width_plain_and_shows_progress(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, out = trained
    report = next(line for line in out.stdout.splitlines() if line.startswith("evaluation report:"))
    path = Path(report.removeprefix("evaluation report: "))
    assert path.is_file() and LONG in str(path)  # one line, not cut at column 80
    assert "\x1b[" not in out.stdout and "\x1b[" not in out.stderr
    assert "with confusion_matrix.png" in out.stdout
    err = out.stderr.splitlines()
    # A line per phase as it starts and ends, and one per tuning trial, in order.
    for phase in ("ingest", "validate", "split", "featurize", "train", "evaluate", "register"):
        assert f"{phase}: running" in err, out.stderr
        assert any(line.startswith(f"{phase}: succeeded in ") for line in err), out.stderr
    trials = [line for line in err if line.startswith("  train: logistic_regression trial")]
    assert len(trials) == 2 and "cross-validated roc_auc" in trials[0]
    assert err.index("train: running") < err.index(trials[0])


# -- incidents ---------------------------------------------------------------------------


def test_incidents_list_says_what_it_hid(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: inc\n")
    project = open_project(tmp_path)
    try:
        now = datetime.now(UTC) - timedelta(minutes=5)
        alert = AlertIn(name="quality-drop", labels={"deployment": "churn-prod"}, starts_at=now)
        graph = LineageGraph([("model:churn/1", "deployment:churn-prod")])
        (inc_id,) = ingest_alerts(project.store, [alert], graph).opened
        resolve(project.store, inc_id, note="healed", by="tester")
    finally:
        project.close()
    out = opsloop("incidents", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "no open incidents",
        "1 resolved incident hidden; --all shows it",
    ]
    every = opsloop("incidents", "list", "--all", cwd=tmp_path)
    assert "Quality drop" in every.stdout and "resolved" in every.stdout
    assert "hidden" not in every.stdout
    filtered = opsloop("incidents", "list", "--status", "resolved", cwd=tmp_path)
    assert "resolved" in filtered.stdout and "hidden" not in filtered.stdout
    shown = opsloop("incidents", "show", str(inc_id), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '{"' not in shown.stdout and "Healed; by tester; ended alerts #1;" in shown.stdout
    assert "before status open; after status resolved." in shown.stdout
