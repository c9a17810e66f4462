"""The executor contract: step tasks in, step results out, through futures.

Each check takes a factory of new executors (called with no arguments), runs a few tasks of
steps defined in :mod:`opsloop.testing._steps` with a file artifact store in a temporary
folder, and shuts the executor down::

    from opsloop.testing import check_executor
    check_executor(lambda: MyExecutor(max_workers=2))

Workers must import ``opsloop.testing._steps`` by name (it is part of the package), and
step-end hooks added in the calling process must run in the worker, as they do in forked
processes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.pipeline import worker
from opsloop.pipeline.executors.base import Executor, StepResult, StepTask
from opsloop.pipeline.materializers import load_value
from opsloop.testing import _steps as steps
from opsloop.testing._core import Check, check, run_checks

if TYPE_CHECKING:
    from opsloop.pipeline.step import Step

__all__ = ["ExecutorFactory", "check_executor", "yield_executor_checks"]

ExecutorFactory = Callable[[], Executor]
"""Builds a new executor."""

TIMEOUT_S = 120.0
"""How long a check waits for one result."""


def _task(s: Step, artifacts: ArtifactStore, **kw: Any) -> StepTask:
    return StepTask(
        run_id=kw.pop("run_id", "r"),
        step=kw.pop("name", s.name),
        module=s.module,
        qualname=s.qualname,
        source_digest=kw.pop("source_digest", s.source_digest),
        params=kw.pop("params", {}),
        inputs={},
        outputs=s.outputs,
        artifacts_url=artifacts.url,
        module_file=s.source_file,
        **kw,
    )


@contextmanager
def _setting(make: ExecutorFactory) -> Iterator[tuple[Executor, ArtifactStore, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = open_artifact_store(str(folder / "artifacts"))
        executor = make()
        assert isinstance(executor, Executor), f"the factory returned {executor!r}"
        with executor:
            yield executor, artifacts, folder


def _result(executor: Executor, task: StepTask) -> StepResult:
    return executor.submit(task).result(timeout=TIMEOUT_S)


@check
def check_runs_more_tasks_than_workers(make: ExecutorFactory) -> None:
    """Tasks beyond ``max_workers`` queue; every one runs, with its outputs, time and memory."""
    with _setting(make) as (ex, artifacts, _):
        count = max(1, ex.max_workers) + 3
        tasks = [
            _task(steps.parity, artifacts, params={"n": n}, name=f"p{n}") for n in range(count)
        ]
        futures = [ex.submit(t) for t in tasks]
        results = [f.result(timeout=TIMEOUT_S) for f in futures]
        assert [r.ok for r in results] == [True] * count, [r.error for r in results]
        values = [load_value(r.outputs["output"], artifacts) for r in results]
    assert [r.step for r in results] == [t.step for t in tasks]
    assert all(r.attempt == 1 for r in results)
    assert values == [n % 2 for n in range(count)], values
    assert all(r.cpu_seconds is not None for r in results), "a result has no CPU time"
    assert all((r.peak_memory_bytes or 0) > 0 for r in results), "a result has no peak memory"
    assert all(r.started_at and r.ended_at and r.started_at <= r.ended_at for r in results)


@check
def check_a_failing_step_is_a_result(make: ExecutorFactory) -> None:
    """A step that raises gives ``ok=False`` with the error and traceback, not a failed future."""
    with _setting(make) as (ex, artifacts, _):
        result = _result(ex, _task(steps.explode, artifacts, params={"value": 1}))
    assert not result.ok and not result.crashed
    assert result.error == "ValueError: cannot handle 1", result.error
    assert result.traceback and "cannot handle 1" in result.traceback
    assert result.outputs == {}, result.outputs


@check
def check_refuses_code_that_differs_from_the_plan(make: ExecutorFactory) -> None:
    """A task whose source digest is not the worker's code is refused."""
    with _setting(make) as (ex, artifacts, _):
        task = _task(steps.parity, artifacts, params={"n": 1}, source_digest="0" * 64)
        result = _result(ex, task)
    assert not result.ok
    assert "differs from the code the run was planned with" in (result.error or ""), result.error


@check
def check_wrong_number_of_outputs_is_an_error(make: ExecutorFactory) -> None:
    """A step that returns more values than it declares outputs fails."""
    with _setting(make) as (ex, artifacts, _):
        result = _result(ex, _task(steps.wrong_arity, artifacts))
    assert not result.ok
    expected = "declares outputs one, two and must return a tuple of 2 values"
    assert expected in (result.error or ""), result.error


@check
def check_current_task_is_set_while_the_step_runs(make: ExecutorFactory) -> None:
    """The step sees its own task (run, step name, attempt) through ``current_task``."""
    with _setting(make) as (ex, artifacts, _):
        result = _result(ex, _task(steps.introspect, artifacts, attempt=2))
        assert result.ok, result.error
        assert load_value(result.outputs["output"], artifacts) == "r/introspect/2"
    assert result.attempt == 2


@check
def check_output_is_captured(make: ExecutorFactory) -> None:
    """What a step prints is in its result's logs."""
    with _setting(make) as (ex, artifacts, _):
        text = "hello from a step under contract"
        result = _result(ex, _task(steps.chatty, artifacts, params={"text": text}))
    assert result.ok, result.error
    assert text in result.logs, result.logs


@check
def check_step_end_hooks_run_in_the_worker(make: ExecutorFactory) -> None:
    """Step-end hooks run once per step, after it, with the task set; one that raises fails it."""

    with _setting(make) as (ex, artifacts, folder):
        calls = folder / "hook-calls"

        def hook(task: StepTask, error: BaseException | None) -> None:
            # Written to a file: under an executor with worker processes the hook runs there.
            seen = worker.current_task()
            with calls.open("a") as f:
                f.write(f"{task.step}:{type(error).__name__ if error else None}:{seen is None}\n")
            if task.params.get("n") == 99:
                raise RuntimeError("hook refused")

        worker.add_step_end_hook(hook)
        worker.add_step_end_hook(hook)
        try:
            ok = _result(ex, _task(steps.parity, artifacts, params={"n": 1}))
            failed = _result(ex, _task(steps.explode, artifacts, params={"value": 1}))
            refused = _result(ex, _task(steps.parity, artifacts, params={"n": 99}))
        finally:
            worker.remove_step_end_hook(hook)
        lines = calls.read_text().splitlines() if calls.exists() else []
    assert ok.ok and not failed.ok, (ok.error, failed.error)
    assert not refused.ok and refused.error == "RuntimeError: hook refused", refused.error
    # Called once per step (added twice), after the function, with the current task set.
    assert lines == [
        "parity:None:False",
        "explode:ValueError:False",
        "parity:None:False",
    ], lines


_CHECKS: tuple[Check[ExecutorFactory], ...] = (
    check_runs_more_tasks_than_workers,
    check_a_failing_step_is_a_result,
    check_refuses_code_that_differs_from_the_plan,
    check_wrong_number_of_outputs_is_an_error,
    check_current_task_is_set_while_the_step_runs,
    check_output_is_captured,
    check_step_end_hooks_run_in_the_worker,
)


def yield_executor_checks() -> Iterator[Check[ExecutorFactory]]:
    """Every check of the executor contract; each takes a factory of new executors."""
    yield from _CHECKS


def check_executor(make: ExecutorFactory) -> None:
    """Run the whole executor contract on the executors ``make()`` builds.

    Raises:
        AssertionError: A check failed; the message names every failing check.
    """
    run_checks(yield_executor_checks(), lambda: make, "executor")
