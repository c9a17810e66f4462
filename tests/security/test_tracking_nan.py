"""A NaN or an infinity among many metric points: every point is kept, the run goes on."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import opsloop
from opsloop.context import Project, open_project, set_current_project


@pytest.fixture
def any_project(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A project on each store backend in turn, made the current project."""
    monkeypatch.setenv("OPSLOOP_STORE_URL", store_url)
    (tmp_path / "opsloop.yaml").write_text("project: nan\n")
    proj = open_project(tmp_path)
    set_current_project(proj)
    try:
        yield proj
    finally:
        proj.close()
        set_current_project(None)


@pytest.mark.parametrize("poison", [math.nan, math.inf, -math.inf])
def test_one_poisoned_point_among_50000_loses_nothing(
    any_project: Project, poison: float, caplog: pytest.LogCaptureFixture
) -> None:
    n, bad_step = 50_000, 12_345
    with (
        caplog.at_level(logging.WARNING, logger="opsloop.tracking"),
        opsloop.start_run(name="poisoned") as run,
    ):
        for i in range(n):
            opsloop.log_metric("loss", poison if i == bad_step else 1.0 / (i + 1), step=i)
        opsloop.log_metric("last", poison)
    store = any_project.store
    info = store.runs.get(run.id)
    assert info.status == "finished" and info.error is None
    assert store.runs.count_metric_points(run.id) == n + 1
    history = store.runs.metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(n))
    got = history[bad_step].value
    assert math.isnan(got) if math.isnan(poison) else got == poison
    assert history[bad_step + 1].value == 1.0 / (bad_step + 2)
    latest = info.metrics["last"]
    assert math.isnan(latest) if math.isnan(poison) else latest == poison
    assert [r for r in caplog.records if r.name == "opsloop.tracking"] == []


def _cli(project: Project, *args: str) -> str:
    env = {**os.environ, "OPSLOOP_PROJECT_DIR": str(project.dir), "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_cli_shows_nan_and_infinite_metrics(project: Project) -> None:
    with opsloop.start_run(name="shown") as run:
        opsloop.log_metrics({"a_nan": math.nan, "b_inf": math.inf, "c_ninf": -math.inf})
    listed = _cli(project, "runs", "list")
    assert "a_nan=nan" in listed and "b_inf=inf" in listed and "c_ninf=-inf" in listed
    shown = _cli(project, "runs", "show", run.id)
    assert "a_nan" in shown and "nan" in shown and "-inf" in shown
