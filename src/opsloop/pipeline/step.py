"""``@step`` and ``@pipeline``: pipelines from plain functions.

A step is a function whose outputs are stored as artifacts and whose runs are cached. A
pipeline is a function that calls steps; calling steps inside it records a DAG instead of
running them (see :mod:`opsloop.pipeline.dag`). Outside a pipeline a step is a plain function
call, which keeps steps easy to unit-test.
"""

from __future__ import annotations

import inspect
import re
import typing
from functools import cached_property, update_wrapper
from typing import TYPE_CHECKING, Any, overload

from pydantic import TypeAdapter, ValidationError

from opsloop.errors import PipelineError
from opsloop.names import OUTPUT_NAME, STEP_NAME
from opsloop.pipeline.cache import source_digest
from opsloop.pipeline.dag import Dag, _check_param, building, current_builder

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from opsloop.pipeline.runner import PipelineRunResult

__all__ = ["Pipeline", "Step", "lookup_step", "parse_bytes", "pipeline", "step"]

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(value: int | str) -> int:
    """Bytes from an int or a size such as ``"512MB"`` or ``"2GiB"`` (decimal and binary units).

    Raises:
        ValueError: Not a size.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    match = _SIZE.match(str(value))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size such as 536870912, '512MB' or '2GiB'")
    return int(float(match.group(1)) * _UNITS[unit])


# Steps by (module, qualname), filled when a step is defined. A worker forked from the process
# that defined a step finds it here without importing anything, which also lets steps defined
# inside functions run under the local executor.
_STEPS: dict[tuple[str, str], Step] = {}


def lookup_step(module: str, qualname: str) -> Step | None:
    """The step defined as ``module.qualname`` in this process, if any."""
    return _STEPS.get((module, qualname))


def _check_signature(func: Callable[..., Any], what: str) -> inspect.Signature:
    sig = inspect.signature(func)
    for p in sig.parameters.values():
        if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            raise PipelineError(
                f"{what} '{func.__qualname__}' has parameter '{p.name}' of kind "
                f"{p.kind.description}: {what}s take named parameters only"
            )
    return sig


class Step:
    """A pipeline step wrapping a plain function.

    Args:
        func: The function. Its arguments are step outputs (inputs) or JSON values (parameters);
            it returns one value per declared output.
        name: Step name (defaults to the function's name).
        retries: How many times a failed execution is tried again.
        outputs: Names of the outputs; with more than one the function returns a tuple.
        cache: Whether an unchanged execution may be reused from an earlier run.
        num_cpus: CPUs the step needs; an executor that schedules by resources (``ray``)
            reserves them. None: the executor's default (one CPU).
        memory: Memory the step needs, in bytes or with a unit (``"2GiB"``, ``"512MB"``);
            reserved by an executor that schedules by resources. None: no reservation.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        outputs: str | Sequence[str] = ("output",),
        cache: bool = True,
        num_cpus: float | None = None,
        memory: int | str | None = None,
    ) -> None:
        if not inspect.isfunction(func):
            raise PipelineError(f"@step needs a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        if not STEP_NAME.fullmatch(self.name):
            raise PipelineError(
                f"invalid step name {self.name!r}: use letters, digits, '_', '-', '.' "
                "(starting with a letter or '_')"
            )
        if not isinstance(retries, int) or retries < 0:
            raise PipelineError(f"step '{self.name}': retries must be an integer >= 0")
        self.retries = retries
        if num_cpus is not None and (
            isinstance(num_cpus, bool) or not isinstance(num_cpus, int | float) or num_cpus < 0
        ):
            raise PipelineError(f"step '{self.name}': num_cpus must be a number >= 0")
        self.num_cpus: float | None = None if num_cpus is None else float(num_cpus)
        try:
            self.memory: int | None = None if memory is None else parse_bytes(memory)
        except ValueError as exc:
            raise PipelineError(f"step '{self.name}': memory: {exc}") from None
        names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if not names:
            raise PipelineError(f"step '{self.name}' declares no outputs")
        for out in names:
            if not isinstance(out, str) or not OUTPUT_NAME.fullmatch(out):
                raise PipelineError(f"step '{self.name}': invalid output name {out!r}")
        if len(set(names)) != len(names):
            raise PipelineError(f"step '{self.name}': output names repeat: {names}")
        self.outputs: tuple[str, ...] = names
        self.cache = cache
        self.signature = _check_signature(func, "step")
        self.module: str = func.__module__
        self.qualname: str = func.__qualname__
        update_wrapper(self, func)
        _STEPS[(self.module, self.qualname)] = self

    @property
    def source_digest(self) -> str:
        """SHA-256 of the function's code and the project code it uses.

        Recomputed on each access, cheaply (see :func:`opsloop.pipeline.cache.source_digest`),
        so that a helper module reloaded in a running session changes it.
        """
        return source_digest(self.func)

    @property
    def source_file(self) -> str | None:
        """The file that defines the function, when it has one."""
        try:
            return inspect.getsourcefile(self.func)
        except TypeError:
            return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Inside a pipeline body: record the call, return placeholders. Else call the function."""
        builder = current_builder()
        if builder is None:
            return self.func(*args, **kwargs)
        return builder.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.module}.{self.qualname})>"


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    outputs: str | Sequence[str] = ("output",),
    cache: bool = True,
    num_cpus: float | None = None,
    memory: int | str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    outputs: str | Sequence[str] = ("output",),
    cache: bool = True,
    num_cpus: float | None = None,
    memory: int | str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step: ``@step`` or ``@step(name=, retries=, outputs=, cache=)``.

    ``num_cpus`` and ``memory`` declare what one execution needs; executors that schedule by
    resources (``ray``) reserve them, the others ignore them. Neither is part of the cache key.

    Example:
        >>> @step(outputs=("train", "test"))
        ... def split(df, test_size: float = 0.2): ...
    """
    if func is not None:
        return Step(func)

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            retries=retries,
            outputs=outputs,
            cache=cache,
            num_cpus=num_cpus,
            memory=memory,
        )

    return wrap


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Validate ``value`` against ``annotation``; a string may hold JSON for lists and dicts."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception:
        # An annotation pydantic cannot validate (an arbitrary class): take the value as given.
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as first:
        if isinstance(value, str):
            try:
                return adapter.validate_json(value)
            except ValidationError:
                pass
        problem = first.errors()[0]["msg"] if first.errors() else str(first)
        raise PipelineError(f"pipeline parameter '{name}'={value!r}: {problem}") from None


class Pipeline:
    """A pipeline: a function whose body calls steps.

    Its keyword arguments are the pipeline's parameters. :meth:`build` runs the body to get the
    DAG; calling the pipeline runs it with :func:`opsloop.pipeline.run_pipeline`.

    Args:
        func: The pipeline body.
        name: Pipeline name (defaults to the function's name); runs are recorded under it.
    """

    def __init__(self, func: Callable[..., Any], *, name: str | None = None) -> None:
        if not inspect.isfunction(func):
            raise PipelineError(f"@pipeline needs a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        if not STEP_NAME.fullmatch(self.name):
            raise PipelineError(f"invalid pipeline name {self.name!r}")
        self.signature = _check_signature(func, "pipeline")
        update_wrapper(self, func)

    @property
    def source(self) -> str:
        """``module:qualname`` of the pipeline function."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    @cached_property
    def _hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.func)
        except (NameError, TypeError):
            return {}

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The pipeline's parameters by name."""
        return dict(self.signature.parameters)

    def coerce_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check and convert parameters (e.g. strings from ``-p key=value``); fill defaults.

        Each value is validated against the parameter's annotation, or the type of its
        default when it has none; a string may hold JSON for list and dict parameters.

        Raises:
            PipelineError: Unknown, missing or invalid parameters.
        """
        params = self.parameters()
        unknown = sorted(set(raw) - set(params))
        if unknown:
            raise PipelineError(
                f"pipeline '{self.name}' has no parameter(s) {', '.join(unknown)}; "
                f"its parameters: {', '.join(params) or '(none)'}"
            )
        missing = [
            n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in raw
        ]
        if missing:
            raise PipelineError(
                f"pipeline '{self.name}' needs parameter(s) {', '.join(missing)}",
                hint=" ".join(f"-p {n}=VALUE" for n in missing),
            )
        out: dict[str, Any] = {}
        for n, p in params.items():
            if n not in raw:
                value = p.default
            else:
                value = raw[n]
                annotation = self._hints.get(n, inspect.Parameter.empty)
                if (
                    annotation is inspect.Parameter.empty
                    and p.default is not inspect.Parameter.empty
                    and p.default is not None
                ):
                    annotation = type(p.default)
                if annotation is not inspect.Parameter.empty and annotation is not Any:
                    value = _coerce(n, annotation, value)
            out[n] = _check_param(value, f"pipeline parameter '{n}'")
        return out

    def build(self, params: Mapping[str, Any] | None = None) -> Dag:
        """Run the body with ``params`` (coerced) and return the DAG of its step calls.

        Raises:
            PipelineError: Bad parameters, a bad step call, or the body raised.
        """
        values = self.coerce_params(params or {})
        with building(self.name) as builder:
            try:
                self.func(**values)
            except PipelineError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"building pipeline '{self.name}' failed: {type(exc).__name__}: {exc}",
                    hint="a pipeline body only calls steps; step outputs have no value until "
                    "the pipeline runs",
                ) from exc
        if not builder.dag.nodes:
            raise PipelineError(f"pipeline '{self.name}' calls no step")
        return builder.dag

    def __call__(self, **params: Any) -> PipelineRunResult:
        """Run the pipeline in the current project (see :func:`run_pipeline`)."""
        from opsloop.pipeline.runner import run_pipeline  # noqa: PLC0415 - runner imports step

        return run_pipeline(self, params)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} ({self.source})>"


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    func: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(name=...)``."""
    if func is not None:
        return Pipeline(func)

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name=name)

    return wrap
