"""The executor contract, exercised directly with StepTasks."""

from __future__ import annotations

import time

import pytest

from opsloop.errors import ConfigError, PipelineError
from opsloop.pipeline import StepTask, available_executors, get_executor, load_value, step
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.pipeline.executors.local import LocalExecutor

from . import steps_fixture as sf


def task_for(s, artifacts, params=None, inputs=None, **kw):
    return StepTask(
        run_id="r",
        step=kw.pop("name", s.name),
        module=s.module,
        qualname=s.qualname,
        source_digest=kw.pop("source_digest", s.source_digest),
        params=params or {},
        inputs=inputs or {},
        outputs=s.outputs,
        artifacts_url=artifacts.url,
        module_file=s.source_file,
        **kw,
    )


def test_registry_by_name():
    assert {"local", "inline"} <= set(available_executors())
    assert isinstance(get_executor("inline"), InlineExecutor)
    local = get_executor("local", max_workers=3)
    assert isinstance(local, LocalExecutor) and local.max_workers == 3
    local.shutdown()
    with pytest.raises(ConfigError, match=r"unknown executor 'nope'.*inline, local"):
        get_executor("nope")


def test_local_queues_beyond_max_workers(artifacts):
    with LocalExecutor(max_workers=1) as ex:
        futures = [
            ex.submit(task_for(sf.parity, artifacts, {"n": n}, name=f"p{n}")) for n in range(4)
        ]
        results = [f.result(timeout=60) for f in futures]
    assert [r.ok for r in results] == [True] * 4
    assert [load_value(r.outputs["output"], artifacts) for r in results] == [0, 1, 0, 1]
    assert all(r.cpu_seconds is not None and r.peak_memory_bytes > 0 for r in results)


def test_local_shutdown_with_cancel_stops_running_and_queued_tasks(artifacts):
    ex = LocalExecutor(max_workers=1)
    running = ex.submit(task_for(sf.nap, artifacts, {"seconds": 30}))
    queued = ex.submit(task_for(sf.nap, artifacts, {"seconds": 30}, name="later"))
    time.sleep(0.2)
    start = time.monotonic()
    ex.shutdown(cancel=True)
    assert time.monotonic() - start < 10
    result = running.result(timeout=1)
    assert not result.ok and result.crashed and "SIGTERM" in result.error
    assert queued.cancelled()
    with pytest.raises(PipelineError, match="shut down"):
        ex.submit(task_for(sf.nap, artifacts, {"seconds": 0}))


@pytest.mark.slow
def test_local_spawn_imports_the_step_by_module(artifacts):
    with LocalExecutor(max_workers=1, start_method="spawn") as ex:
        result = ex.submit(task_for(sf.parity, artifacts, {"n": 7})).result(timeout=120)
    assert result.ok, result.error
    assert load_value(result.outputs["output"], artifacts) == 1


def test_worker_cannot_import_a_step_defined_in_a_function(artifacts):
    @step
    def local_only() -> int:
        return 1

    task = task_for(local_only, artifacts)
    # Forked workers inherit the step; a fresh interpreter cannot import it.
    assert InlineExecutor().submit(task).result().ok
    from opsloop.pipeline import worker
    from opsloop.pipeline.step import _STEPS

    key = (local_only.module, local_only.qualname)
    saved = _STEPS.pop(key)
    try:
        result = worker.execute_task(task)
    finally:
        _STEPS[key] = saved
    assert not result.ok and "defined inside a function" in result.error


def test_worker_refuses_code_that_differs_from_the_plan(artifacts):
    task = task_for(sf.parity, artifacts, {"n": 1}, source_digest="0" * 64)
    result = InlineExecutor().submit(task).result()
    assert not result.ok
    assert "differs from the code the run was planned with" in result.error


def test_wrong_number_of_outputs_is_an_error(artifacts):
    result = InlineExecutor().submit(task_for(sf.wrong_arity, artifacts)).result()
    assert not result.ok
    assert "declares outputs one, two and must return a tuple of 2 values" in result.error


@pytest.fixture
def hook_calls(tmp_path):
    from opsloop.pipeline import worker

    calls = tmp_path / "hook-calls"

    def hook(task, error):
        # Written to a file: under the local executor the hook runs in the worker.
        seen = worker.current_task()
        with calls.open("a") as f:
            f.write(f"{task.step}:{type(error).__name__ if error else None}:{seen is None}\n")
        if task.params.get("n") == 99:
            raise RuntimeError("hook refused")

    worker.add_step_end_hook(hook)
    worker.add_step_end_hook(hook)
    yield calls
    worker.remove_step_end_hook(hook)


@pytest.mark.parametrize("executor", ["local", "inline"])
def test_step_end_hooks_run_in_the_worker(artifacts, hook_calls, executor):
    with get_executor(executor) as ex:
        ok = ex.submit(task_for(sf.parity, artifacts, {"n": 1})).result(timeout=60)
        failed = ex.submit(task_for(sf.explode, artifacts, {"value": 1})).result(timeout=60)
        refused = ex.submit(task_for(sf.parity, artifacts, {"n": 99})).result(timeout=60)
    assert ok.ok and not failed.ok
    assert not refused.ok and refused.error == "RuntimeError: hook refused"
    # Called once per step (added twice), after the function, with the current task set.
    assert hook_calls.read_text().splitlines() == [
        "parity:None:False",
        "explode:ValueError:False",
        "parity:None:False",
    ]


def test_current_task_is_set_while_the_step_runs(artifacts):
    @step
    def introspect() -> str:
        from opsloop.pipeline.worker import current_task

        task = current_task()
        return f"{task.run_id}/{task.step}/{task.attempt}"

    result = InlineExecutor().submit(task_for(introspect, artifacts, attempt=2)).result()
    assert load_value(result.outputs["output"], artifacts) == "r/introspect/2"
