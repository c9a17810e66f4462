"""Tracking: runs, params, metrics (buffered, never lost), tags and artifacts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import opsloop
from opsloop.context import Project
from opsloop.errors import TrackingError
from opsloop.tracking.buffer import MetricBuffer


def test_start_run_logs_everything(project: Project, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.json").write_text("{}")
    with opsloop.start_run(name="baseline") as run:
        opsloop.log_params({"lr": 0.1})
        opsloop.log_param("layers", 3)
        for i in range(25):
            opsloop.log_metric("loss", 1 / (i + 1), step=i)
        opsloop.log_metrics({"acc": 0.8, "f1": 0.7})
        opsloop.set_tag("team", "fraud")
        digest = opsloop.log_artifact(f)
        opsloop.log_artifact(d, name="folder")
        assert opsloop.active_run() is run
    assert opsloop.active_run() is None
    info = project.store.runs.get(run.id)
    assert info.status == "finished" and info.name == "baseline"
    assert info.params == {"lr": "0.1", "layers": "3"}
    assert info.metrics["loss"] == pytest.approx(1 / 25) and info.metrics["acc"] == 0.8
    assert info.tags == {"team": "fraud"}
    assert [p.step for p in project.store.runs.metric_history(run.id, "loss")] == list(range(25))
    arts = {a.path: a for a in project.store.runs.list_artifacts(run.id)}
    assert arts["notes.txt"].digest == digest and arts["folder"].kind == "dir"
    assert project.artifacts.get_bytes(digest) == b"hi"


def test_steps_default_to_next_per_key(project: Project) -> None:
    with opsloop.start_run() as run:
        for v in (3.0, 2.0, 1.0):
            run.log_metric("a", v)
        run.log_metric("b", 1.0, step=10)
        run.log_metric("b", 2.0)
    hist = project.store.runs.metric_history(run.id, "a")
    assert [p.step for p in hist] == [0, 1, 2]
    assert [p.step for p in project.store.runs.metric_history(run.id, "b")] == [10, 11]


def test_points_are_kept_when_code_raises(project: Project) -> None:
    with pytest.raises(ZeroDivisionError), opsloop.start_run(name="crashy") as run:
        for i in range(1234):
            opsloop.log_metric("x", i)
        _ = 1 / 0
    info = project.store.runs.get(run.id)
    assert info.status == "failed" and "ZeroDivisionError" in (info.error or "")
    assert project.store.runs.count_metric_points(run.id) == 1234


def test_misuse(project: Project) -> None:
    with pytest.raises(TrackingError, match="no active run"):
        opsloop.log_metric("x", 1)
    with opsloop.start_run() as outer:
        with pytest.raises(TrackingError, match="already active"):
            opsloop.start_run()
        with opsloop.start_run(nested=True) as inner:
            assert opsloop.active_run() is inner
        assert project.store.runs.get(inner.id).parent_id == outer.id
        with pytest.raises(TrackingError, match="not a number"):
            opsloop.log_metric("x", "abc")  # type: ignore[arg-type]
        with pytest.raises(TrackingError, match="does not exist"):
            opsloop.log_artifact("/no/such/file")
    with pytest.raises(TrackingError, match="has ended"):
        outer.log_metric("x", 1)


def test_buffer_is_bounded_and_batched(project: Project) -> None:
    run = project.store.runs.create("b")
    buf = MetricBuffer(project.store, run.id, capacity=100)
    for i in range(1050):
        buf.add("k", float(i), i, 0)
        assert len(buf) <= 100
    buf.flush()
    assert buf.written == 1050 and len(buf) == 0
    buf.close()
    assert project.store.runs.count_metric_points(run.id) == 1050


def test_failed_batch_is_retried_on_flush(project: Project) -> None:
    buf = MetricBuffer(project.store, "0" * 32, capacity=10)  # run does not exist: writes fail
    for i in range(10):
        buf.add("k", float(i), i, 0)
    with pytest.raises(opsloop.NotFoundError):
        buf.flush()
    assert len(buf) == 10  # nothing dropped
    run = project.store.runs.create("late")
    buf.run_id = run.id
    buf.flush()
    assert project.store.runs.count_metric_points(run.id) == 10


SCRIPT = textwrap.dedent(
    """
    import sys, opsloop
    run = opsloop.start_run(name="exit-test")
    print(run.id, flush=True)
    for i in range(5000):
        opsloop.log_metric("m", i)
    if sys.argv[1] == "raise":
        raise RuntimeError("uncaught")
    """
)


@pytest.mark.parametrize(("mode", "status"), [("exit", "finished"), ("raise", "failed")])
def test_points_flushed_at_process_exit(project: Project, mode: str, status: str) -> None:
    env = {
        **os.environ,
        "OPSLOOP_PROJECT_DIR": str(project.dir),
        "OPSLOOP_METRIC_BUFFER_SIZE": "3000",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (out.returncode == 0) == (mode == "exit"), out.stderr
    run_id = out.stdout.split()[0]
    info = project.store.runs.get(run_id)
    assert info.status == status
    assert project.store.runs.count_metric_points(run_id) == 5000
    if mode == "raise":
        assert "RuntimeError: uncaught" in (info.error or "")
