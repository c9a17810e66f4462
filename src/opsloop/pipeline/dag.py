"""The DAG of a pipeline, derived from the data passed between its steps.

While a pipeline's body runs under a :class:`DagBuilder`, calling a step records a
:class:`Node` and returns placeholders (:class:`StepOutput`); a placeholder passed to another
step is an edge, any other argument is a parameter of that step.
"""

from __future__ import annotations

import contextvars
import graphlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.errors import PipelineError
from opsloop.names import STEP_NAME

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from opsloop.pipeline.step import Step

__all__ = ["Dag", "DagBuilder", "Node", "StepOutput", "current_builder"]

_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class StepOutput:
    """Placeholder for an output of a step, known only when the pipeline runs.

    Attributes:
        node: Name of the node (step call) that produces it.
        output: Name of the output.
    """

    node: str
    output: str

    def __bool__(self) -> bool:
        raise PipelineError(
            f"output '{self.output}' of step '{self.node}' has no value while the pipeline is "
            "being built: pass it to another step instead of testing it"
        )

    def __iter__(self) -> Iterator[Any]:
        raise PipelineError(
            f"output '{self.output}' of step '{self.node}' cannot be unpacked: declare several "
            "outputs with @step(outputs=(...)) to return more than one value"
        )


@dataclass
class Node:
    """One call of a step in a pipeline.

    Attributes:
        name: Unique name in the pipeline (the step's name, suffixed ``_2``, ``_3`` … when the
            same step is called again).
        step: The step called.
        params: Arguments that are not step outputs (JSON values).
        inputs: Arguments that are step outputs.
    """

    name: str
    step: Step
    params: dict[str, Any]
    inputs: dict[str, StepOutput]

    @property
    def upstream(self) -> list[str]:
        """Names of the nodes whose outputs this one reads, without duplicates."""
        return list(dict.fromkeys(ref.node for ref in self.inputs.values()))


@dataclass
class Dag:
    """The nodes of one pipeline run, in the order the body called them."""

    pipeline: str
    nodes: dict[str, Node] = field(default_factory=dict)

    def order(self) -> list[str]:
        """A topological order of the nodes (stable: ties keep call order)."""
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, node in self.nodes.items():
            sorter.add(name, *node.upstream)
        rank = {name: i for i, name in enumerate(self.nodes)}
        sorter.prepare()
        result: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=rank.__getitem__)
            result.extend(ready)
            sorter.done(*ready)
        return result

    def downstream(self, name: str) -> list[str]:
        """Nodes that read an output of ``name`` directly."""
        return [n.name for n in self.nodes.values() if name in n.upstream]

    def descendants(self, name: str) -> set[str]:
        """Every node that depends on ``name``, directly or not."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            for child in self.downstream(todo.pop()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def edges(self) -> list[tuple[str, str]]:
        """``(producer, consumer)`` pairs."""
        return [(up, n.name) for n in self.nodes.values() for up in n.upstream]


def _check_param(value: Any, where: str) -> Any:
    """Return ``value`` as a JSON value, or raise naming ``where``."""
    if isinstance(value, StepOutput):
        raise PipelineError(
            f"{where} holds output '{value.output}' of step '{value.node}' inside a container: "
            "pass step outputs as direct arguments"
        )
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_check_param(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise PipelineError(f"{where} has a non-string key {k!r}")
            out[k] = _check_param(v, f"{where}[{k!r}]")
        return out
    raise PipelineError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}: step parameters "
        "must be JSON values (str, int, float, bool, None, lists and dicts of them)",
        hint="produce the value in a step and pass that step's output instead",
    )


class DagBuilder:
    """Collects the step calls of one pipeline body."""

    def __init__(self, pipeline: str) -> None:
        self.dag = Dag(pipeline)

    def add(self, step: Step, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Record a call of ``step``; return its placeholder(s)."""
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineError(f"step '{step.name}' called with bad arguments: {exc}") from None
        name = step.name
        n = 1
        while name in self.dag.nodes:
            n += 1
            name = f"{step.name}_{n}"
        params: dict[str, Any] = {}
        inputs: dict[str, StepOutput] = {}
        for arg, value in bound.arguments.items():
            if isinstance(value, StepOutput):
                if value.node not in self.dag.nodes:
                    raise PipelineError(
                        f"argument '{arg}' of step '{name}' is an output of step "
                        f"'{value.node}', which is not part of pipeline '{self.dag.pipeline}'"
                    )
                if value.output not in self.dag.nodes[value.node].step.outputs:
                    raise PipelineError(
                        f"argument '{arg}' of step '{name}': step '{value.node}' has no output "
                        f"'{value.output}'"
                    )
                inputs[arg] = value
            else:
                params[arg] = _check_param(value, f"argument '{arg}' of step '{name}'")
        self.dag.nodes[name] = Node(name, step, params, inputs)
        refs = tuple(StepOutput(name, out) for out in step.outputs)
        return refs[0] if len(refs) == 1 else refs


_BUILDER: contextvars.ContextVar[DagBuilder | None] = contextvars.ContextVar(
    "opsloop_dag_builder", default=None
)


def current_builder() -> DagBuilder | None:
    """The builder of the pipeline being built in this context, if any."""
    return _BUILDER.get()


@contextmanager
def building(pipeline: str) -> Iterator[DagBuilder]:
    """Collect step calls made inside the block into a new DAG."""
    if _BUILDER.get() is not None:
        raise PipelineError(
            f"pipeline '{pipeline}' called while another pipeline is being built: "
            "pipelines cannot be nested; call its steps instead"
        )
    if not STEP_NAME.fullmatch(pipeline):
        raise PipelineError(
            f"invalid pipeline name {pipeline!r}: use letters, digits, '_', '-', '.'"
        )
    builder = DagBuilder(pipeline)
    token = _BUILDER.set(builder)
    try:
        yield builder
    finally:
        _BUILDER.reset(token)
