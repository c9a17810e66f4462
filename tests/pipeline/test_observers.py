"""Run observers: the runner tells them each moment of a run, and a broken one breaks nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from opsloop.pipeline import (
    RunObserver,
    RunView,
    StepView,
    add_run_observer,
    remove_run_observer,
    run_pipeline,
)

from . import lineage_steps_fixture as lf


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.closed = 0
        self.views: dict[str, StepView] = {}

    def run_started(self, *, run: RunView) -> None:
        self.calls.append(("run_started", run.status))

    def step_started(self, *, run: RunView, step: StepView) -> None:
        self.calls.append(("step_started", step.name, step.status))

    def step_finished(self, *, run: RunView, step: StepView) -> None:
        self.calls.append(("step_finished", step.name, step.status))
        self.views[step.name] = step

    def run_finished(self, *, run: RunView) -> None:
        self.calls.append(("run_finished", run.status, run.error or ""))

    def close(self) -> None:
        self.closed += 1


class Broken(RunObserver):
    def step_started(self, **kwargs: Any) -> None:
        raise RuntimeError("observer bug")


def test_observers_see_every_moment_in_order(store, artifacts) -> None:
    rec = Recorder()
    result = run_pipeline(
        lf.orders,
        {"rows": 4, "fail": True},
        store=store,
        artifacts=artifacts,
        executor="inline",
        progress=False,
        observers=[rec],
    )
    assert result.status == "failed"
    assert rec.calls[0] == ("run_started", "running")
    assert rec.calls[-1][:2] == ("run_finished", "failed")
    assert "summarise" in rec.calls[-1][2]
    assert ("step_started", "load", "running") in rec.calls
    assert rec.calls.index(("step_started", "load", "running")) < rec.calls.index(
        ("step_finished", "load", "succeeded")
    )
    assert ("step_finished", "summarise", "failed") in rec.calls
    assert ("step_finished", "publish", "skipped") in rec.calls
    assert ("step_started", "publish", "running") not in rec.calls
    check = rec.views["check"]
    assert check.inputs["data"].step == "load" and check.inputs["data"].output == "data"
    assert check.inputs["data"].digest == result.output_digest("load", "data")
    assert check.outputs == {"output": result.output_digest("check")}
    failed = rec.views["summarise"]
    assert "the summary broke on purpose" in (failed.error or "")
    assert failed.outputs == {} and failed.attempts == 1
    # Observers passed to a run are the caller's: the runner does not close them.
    assert rec.closed == 0


def test_a_raising_observer_is_a_warning_and_others_still_hear(
    store, artifacts, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    broken = Broken()
    add_run_observer(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="opsloop.pipeline.observers"):
            result = run_pipeline(
                lf.orders,
                {"rows": 3},
                store=store,
                artifacts=artifacts,
                executor="inline",
                progress=False,
                observers=[rec],
            )
    finally:
        remove_run_observer(broken)
    assert result.succeeded
    assert sum(c[0] == "step_started" for c in rec.calls) == 5
    assert any("observer bug" in r.getMessage() for r in caplog.records)
