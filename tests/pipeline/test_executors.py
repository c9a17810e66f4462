"""Executors by name, the executor contract (opsloop.testing.executors) on each built-in one,
and what only the local executor does (cancel, spawn)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from opsloop.errors import ConfigError, PipelineError
from opsloop.pipeline import (
    Executor,
    StepTask,
    available_executors,
    get_executor,
    load_value,
    step,
    worker,
)
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.pipeline.executors.local import LocalExecutor
from opsloop.pipeline.step import _STEPS
from opsloop.testing import Check, yield_executor_checks

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
    assert {"local", "inline", "ray"} <= set(available_executors())
    assert isinstance(get_executor("inline"), InlineExecutor)
    local = get_executor("local", max_workers=3)
    assert isinstance(local, LocalExecutor) and local.max_workers == 3
    local.shutdown()
    with pytest.raises(ConfigError, match=r"unknown executor 'nope'.*inline, local, ray"):
        get_executor("nope")


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

    key = (local_only.module, local_only.qualname)
    saved = _STEPS.pop(key)
    try:
        result = worker.execute_task(task)
    finally:
        _STEPS[key] = saved
    assert not result.ok and "defined inside a function" in result.error


FACTORIES = {
    # One worker, so that the contract's extra tasks queue.
    "local": lambda: get_executor("local", max_workers=1),
    "inline": lambda: get_executor("inline"),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("check", list(yield_executor_checks()), ids=lambda c: c.name)
def test_executor_contract(name: str, check: Check[Callable[[], Executor]]) -> None:
    check(FACTORIES[name])


# Under contract on a two-node cluster in tests/e2e/test_ray.py.
ELSEWHERE = {"ray"}


def test_every_registered_executor_is_under_contract():
    assert set(FACTORIES) | ELSEWHERE == set(available_executors())
