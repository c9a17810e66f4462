"""Running pipelines end to end on the local executor (worker processes) and inline."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from opsloop.errors import NotFoundError, PipelineError, StepFailedError
from opsloop.pipeline import load_output, run_pipeline
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.pipeline.progress import RunDisplay
from opsloop.store import open_store

from . import steps_fixture as sf


def run(pipe, params=None, **kw):
    kw.setdefault("progress", False)
    return run_pipeline(pipe, params or {}, **kw)


def test_run_records_the_pipeline_and_every_step(store, artifacts):
    result = run(sf.training, {"rows": "120", "c": "0.5"}, store=store, artifacts=artifacts)

    assert result.status == "finished" and result.succeeded
    assert [s.status for s in result.steps.values()] == ["succeeded"] * 4
    metrics = load_output(result, "evaluate")
    assert metrics["n"] == 30 and 0.5 <= metrics["accuracy"] <= 1.0

    run_info = store.runs.get(result.run_id)
    assert run_info.kind == "pipeline"
    assert run_info.status == "finished"
    assert run_info.params == {"rows": "120", "c": "0.5", "seed": "0"}
    assert run_info.source == f"{sf.__name__}:training"
    assert run_info.tags["opsloop.executor"] == "local"

    steps = {s.name: s for s in store.steps.list(result.run_id)}
    split, fit = steps["split"], steps["fit"]
    assert split.inputs == {"df": steps["make_frame"].outputs["output"]}
    assert set(split.outputs) == {"train", "test"}
    assert fit.inputs == {"train": split.outputs["train"]}
    assert fit.params == {"c": 0.5}
    assert fit.cache_key and fit.cache_key.startswith("sha256:")
    assert fit.attempts == 1 and fit.started_at and fit.ended_at
    assert fit.started_at <= fit.ended_at
    events = [e.kind for e in store.events.list(object_id=result.run_id)]
    assert events.count("step.succeeded") == 4 and events[-1] == "run.finished"


def test_independent_steps_run_at_the_same_time(store, artifacts, tmp_path):
    # Each rendezvous step waits for a file the other creates: only concurrent runs finish.
    folder = tmp_path / "meet"
    folder.mkdir()
    result = run(
        sf.concurrent_pair, {"folder": str(folder)}, store=store, artifacts=artifacts, max_workers=2
    )
    assert result.status == "finished", result.error
    assert load_output(result, "join") == ["a", "b"]


@pytest.mark.parametrize(("executor", "workers"), [("local", 1), ("inline", None)])
def test_max_workers_bounds_concurrency(store, artifacts, tmp_path, executor, workers):
    folder = tmp_path / "meet"
    folder.mkdir()
    result = run(
        sf.concurrent_pair,
        {"folder": str(folder), "wait": 0.5},
        store=store,
        artifacts=artifacts,
        executor=executor,
        max_workers=workers,
    )
    # One step at a time: the first rendezvous gives up waiting for the second.
    assert result.status == "failed"
    assert "never showed up" in result.steps["rendezvous"].info.error


@pytest.mark.parametrize("executor", ["local", "inline"])
def test_failure_skips_dependents_and_fails_the_run(store, artifacts, executor):
    result = run(sf.failing, store=store, artifacts=artifacts, executor=executor)

    assert result.status == "failed"
    statuses = {n: s.status for n, s in result.steps.items()}
    assert statuses == {
        "source_value": "succeeded",
        "explode": "failed",
        "after_explode": "skipped",
        "independent": "succeeded",
    }
    failed = result.steps["explode"].info
    assert failed.error == "ValueError: cannot handle 41"
    assert "Traceback" in failed.traceback and "in explode" in failed.traceback
    assert 'raise ValueError(f"cannot handle {value}")' in failed.traceback
    assert store.runs.get(result.run_id).status == "failed"
    assert "step 'explode' failed" in store.runs.get(result.run_id).error
    with pytest.raises(StepFailedError, match="step 'explode' failed: ValueError") as info:
        result.raise_for_status()
    assert info.value.step == "explode" and "Traceback" in info.value.traceback
    with pytest.raises(PipelineError, match="it is skipped"):
        load_output(result, "after_explode")


def test_resume_after_fix_reuses_what_succeeded(store, artifacts, tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    first = run(sf.failing, {"marker": str(marker)}, store=store, artifacts=artifacts)
    assert first.failed_steps == ["explode"]

    marker.unlink()  # the fix
    second = run(sf.failing, {"marker": str(marker)}, store=store, artifacts=artifacts)
    assert second.status == "finished"
    statuses = {n: s.status for n, s in second.steps.items()}
    assert statuses == {
        "source_value": "cached",
        "explode": "succeeded",
        "after_explode": "succeeded",
        "independent": "cached",
    }
    assert second.steps["source_value"].info.cached_from == first.steps["source_value"].step_run_id
    assert load_output(second, "after_explode") == 84


@pytest.mark.parametrize("executor", ["local", "inline"])
def test_retries_count_attempts(store, artifacts, tmp_path, executor):
    counter = tmp_path / "count"
    result = run(
        sf.flaky_pipeline,
        {"counter": str(counter), "fail_times": 1},
        store=store,
        artifacts=artifacts,
        executor=executor,
    )
    info = result.steps["flaky"].info
    assert info.status == "succeeded" and info.attempts == 2
    assert "----- attempt 1 -----" in info.logs
    assert load_output(result, "flaky") == 2

    counter.unlink()
    result = run(
        sf.flaky_pipeline,
        {"counter": str(counter), "fail_times": 5},
        store=store,
        artifacts=artifacts,
        executor=executor,
    )
    info = result.steps["flaky"].info
    assert info.status == "failed" and info.attempts == 3
    assert info.error == "RuntimeError: flaky failure 3"
    assert counter.read_text() == "3"


def test_worker_exit_fails_the_step_cleanly(store, artifacts):
    result = run(sf.crashing, {"kind": "exit"}, store=store, artifacts=artifacts)
    assert result.status == "failed"
    info = result.steps["hard_exit"].info
    assert info.status == "failed"
    assert "worker process of step 'hard_exit' died (exit code 3)" in info.error
    assert result.steps["after_explode"].status == "skipped"
    assert result.steps["independent"].status == "succeeded"


def test_worker_segfault_fails_the_step_cleanly(store, artifacts):
    result = run(sf.crashing, {"kind": "segv"}, store=store, artifacts=artifacts)
    info = result.steps["segfault"].info
    assert info.status == "failed"
    assert "killed by signal SIGSEGV" in info.error
    # faulthandler wrote the Python stack of the crash into the step's captured output.
    assert "Fatal Python error: Segmentation fault" in info.logs
    assert "segfault" in info.logs
    assert result.steps["independent"].status == "succeeded"


def test_logs_are_captured_from_every_channel(store, artifacts):
    result = run(sf.logging_pipeline, store=store, artifacts=artifacts)
    logs = result.steps["chatty"].info.logs
    for text in (
        "hello from stdout",
        "hello from stderr",
        "INFO opsloop.tests.steps: an info record",
        "WARNING opsloop.tests.steps: a warning record",
        "raw bytes on fd 1",
    ):
        assert text in logs


def test_inline_logs_capture_python_output(store, artifacts):
    result = run(sf.logging_pipeline, store=store, artifacts=artifacts, executor="inline")
    logs = result.steps["chatty"].info.logs
    assert "hello from stdout" in logs and "hello from stderr" in logs
    assert "an info record" in logs


@pytest.mark.parametrize("executor", ["local", "inline"])
def test_logs_are_bounded(store, artifacts, executor):
    limit = 20_000
    result = run(
        sf.logging_pipeline,
        {"lines": 2000},
        store=store,
        artifacts=artifacts,
        executor=executor,
        log_limit=limit,
    )
    logs = result.steps["very_chatty"].info.logs
    assert len(logs) <= limit + 100
    assert logs.startswith("[... ") and "dropped ...]" in logs
    assert "line 001999" in logs and "line 000000" not in logs


def test_cpu_time_and_peak_memory_are_recorded_per_step(store, artifacts):
    result = run(
        sf.resources, {"megabytes": 96, "cpu_seconds": 0.3}, store=store, artifacts=artifacts
    )
    heavy, light = result.steps["heavy"].info, result.steps["light"].info
    assert heavy.cpu_seconds >= 0.25
    assert light.cpu_seconds < heavy.cpu_seconds
    # Both workers start from the same forked parent: the difference is the step's own use.
    assert heavy.peak_memory_bytes - light.peak_memory_bytes >= 80 * (1 << 20)


def test_unsupported_output_fails_naming_step_and_type(store, artifacts):
    result = run(sf.unsupported, store=store, artifacts=artifacts)
    info = result.steps["unsupported_output"].info
    assert info.status == "failed"
    assert info.error.startswith("MaterializerError: output 'output' of step 'unsupported_output'")
    assert "builtins.set" in info.error


def test_load_output_by_run_id_and_step_run(store, artifacts):
    result = run(
        sf.parity_pipeline, {"n": 3, "marker": "/dev/null"}, store=store, artifacts=artifacts
    )
    assert load_output(result.run_id, "parity", store=store, artifacts=artifacts) == 1
    assert load_output(result.steps["describe"], artifacts=artifacts) == "parity 1"
    info = store.steps.list(result.run_id)[0]
    assert load_output(info, "parity", artifacts=artifacts) == 1
    with pytest.raises(NotFoundError, match="no step 'nope'"):
        load_output(result, "nope")
    with pytest.raises(NotFoundError, match="no output 'other'"):
        load_output(result, "parity", "other")
    with pytest.raises(PipelineError, match="not 'describe'"):
        load_output(info, "describe", artifacts=artifacts)


def test_progress_display_draws_a_line_per_step(store, artifacts):
    result = run(
        sf.parity_pipeline, {"n": 2, "marker": "/dev/null"}, store=store, artifacts=artifacts
    )
    assert result.succeeded
    out = io.StringIO()
    display = RunDisplay("demo", ["parity", "describe"], console=Console(file=out, width=80))
    with display:
        display.update("parity", "running")
        display.update("parity", "cached", "from step run 1")
        display.update("describe", "failed", "ValueError: x")
    text = out.getvalue()
    assert "pipeline demo" in text
    assert "cached" in text and "failed" in text and "ValueError: x" in text


def test_progress_true_runs(store, artifacts, capsys):
    result = run_pipeline(
        sf.parity_pipeline, {"n": 2, "marker": "/dev/null"}, store=store, artifacts=artifacts
    )
    assert result.succeeded
    assert "parity" in capsys.readouterr().err


def test_run_pipeline_needs_a_pipeline(store, artifacts):
    with pytest.raises(PipelineError, match="is not a pipeline"):
        run_pipeline(sf.parity, store=store, artifacts=artifacts)  # type: ignore[arg-type]


def test_default_stores_come_from_the_current_project(project, tmp_path):
    result = sf.parity_pipeline(n=4, marker=str(tmp_path / "m"))
    assert result.succeeded
    assert load_output(result.run_id, "parity") == 0
    info = project.store.runs.get(result.run_id)
    assert info.kind == "pipeline" and info.project == "demo"


def test_every_store_backend(store_url, artifacts, tmp_path):
    backend = open_store(store_url)
    try:
        params = {"n": 3, "marker": str(tmp_path / "m")}
        first = run(sf.parity_pipeline, params, store=backend, artifacts=artifacts)
        second = run(sf.parity_pipeline, params, store=backend, artifacts=artifacts)
    finally:
        backend.close()
    assert first.succeeded and second.cached_steps == ["parity", "describe"]


def test_interrupted_run_is_recorded_as_killed(store, artifacts, tmp_path):
    class Interrupting(InlineExecutor):
        def submit(self, task):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(sf.training, store=store, artifacts=artifacts, executor=Interrupting())
    (info,) = store.runs.list(kind="pipeline")
    assert info.status == "killed"
    steps = {s.name: s.status for s in store.steps.list(info.id)}
    assert steps["make_frame"] == "failed" and steps["evaluate"] == "skipped"
