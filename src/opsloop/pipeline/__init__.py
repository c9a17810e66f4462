"""Pipelines from plain functions: ``@step``, ``@pipeline``, cached runs on pluggable executors.

    from opsloop.pipeline import pipeline, run_pipeline, step

    @step
    def load(path: str): ...

    @step(outputs=("train", "test"))
    def split(df, test_size: float = 0.2): ...

    @pipeline
    def training(path: str = "data.csv"):
        train, test = split(load(path))

    result = run_pipeline(training, {"path": "other.csv"})

The DAG follows the data: a step output passed to another step is an edge. Unchanged steps
are reused from earlier runs (see :mod:`opsloop.pipeline.cache`); outputs are stored as
artifacts by materializers (see :mod:`opsloop.pipeline.materializers`).
"""

import sys
import types
from collections.abc import Callable
from typing import Any

from opsloop.pipeline.dag import Dag, Node, StepOutput
from opsloop.pipeline.executors import (
    Executor,
    StepResult,
    StepTask,
    available_executors,
    get_executor,
    register_executor,
)
from opsloop.pipeline.materializers import (
    Materializer,
    load_value,
    register_materializer,
    save_value,
    unregister_materializer,
)
from opsloop.pipeline.observers import (
    InputRef,
    RunObserver,
    RunView,
    StepView,
    add_run_observer,
    remove_run_observer,
)
from opsloop.pipeline.runner import PipelineRunResult, StepOutcome, load_output, run_pipeline
from opsloop.pipeline.step import Pipeline, Step, pipeline, step
from opsloop.pipeline.worker import add_step_end_hook, current_task, remove_step_end_hook

__all__ = [
    "Dag",
    "Executor",
    "InputRef",
    "Materializer",
    "Node",
    "Pipeline",
    "PipelineRunResult",
    "RunObserver",
    "RunView",
    "Step",
    "StepOutcome",
    "StepOutput",
    "StepResult",
    "StepTask",
    "StepView",
    "add_run_observer",
    "add_step_end_hook",
    "available_executors",
    "current_task",
    "get_executor",
    "load_output",
    "load_value",
    "pipeline",
    "register_executor",
    "register_materializer",
    "remove_run_observer",
    "remove_step_end_hook",
    "run_pipeline",
    "save_value",
    "step",
    "unregister_materializer",
]


class _CallablePackage(types.ModuleType):
    """This package, callable as the ``@pipeline`` decorator.

    ``opsloop.pipeline`` names both this package and the decorator users expect at the top
    level; once the package is imported, the attribute is the package, so calling it must
    decorate.
    """

    def __call__(
        self, func: Callable[..., Any] | None = None, /, *, name: str | None = None
    ) -> Any:
        return Pipeline(func, name=name) if func is not None else pipeline(name=name)


sys.modules[__name__].__class__ = _CallablePackage
