"""What runs inside a worker: find the step, load its inputs, call it, store its outputs.

Executors wrap :func:`execute_task` with log capture and resource measurement; it never
touches the metadata store.
"""

from __future__ import annotations

import faulthandler
import importlib
import importlib.util
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.errors import PipelineError
from opsloop.pipeline.executors.base import StepResult, StepTask
from opsloop.pipeline.materializers import load_value, save_value
from opsloop.pipeline.step import Step, lookup_step

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "LOG_FORMAT",
    "StepEndHook",
    "add_step_end_hook",
    "capture_python",
    "current_task",
    "execute_task",
    "read_log_tail",
    "redirect_process_output",
    "remove_step_end_hook",
    "resolve_step",
    "step_end_hooks",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_STORES: dict[str, ArtifactStore] = {}

StepEndHook = Callable[[StepTask, BaseException | None], None]
"""Called in the worker after a step function returns (error None) or raises."""

_END_HOOKS: list[StepEndHook] = []
_CURRENT: StepTask | None = None


def current_task() -> StepTask | None:
    """The task whose step function is running in this process, if any.

    Lets code a step calls (tracking, for one) find the pipeline run and step it runs for.
    """
    return _CURRENT


def add_step_end_hook(hook: StepEndHook) -> None:
    """Call ``hook(task, error)`` in the worker after every step function.

    For integrations that must finish work inside the worker (flush buffered metrics, end a
    run they started); :func:`current_task` is still set while hooks run. A hook that raises
    fails the step. Adding the same hook twice is a
    no-op.
    """
    if hook not in _END_HOOKS:
        _END_HOOKS.append(hook)


def step_end_hooks() -> tuple[StepEndHook, ...]:
    """The hooks :func:`add_step_end_hook` added, in order (for executors that ship them to
    workers which are not forked from this process)."""
    return tuple(_END_HOOKS)


def remove_step_end_hook(hook: StepEndHook) -> None:
    """Stop calling ``hook``."""
    if hook in _END_HOOKS:
        _END_HOOKS.remove(hook)


def _run_end_hooks(task: StepTask, error: BaseException | None) -> None:
    for hook in list(_END_HOOKS):
        hook(task, error)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _artifacts(url: str) -> ArtifactStore:
    store = _STORES.get(url)
    if store is None:
        store = _STORES[url] = open_artifact_store(url)
    return store


def _import(module: str, module_file: str | None) -> ModuleType:
    if module in sys.modules:
        return sys.modules[module]
    try:
        return importlib.import_module(module)
    except ImportError:
        if module_file is None or not os.path.exists(module_file):
            raise
    spec = importlib.util.spec_from_file_location(module, module_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module} from {module_file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


def resolve_step(task: StepTask) -> Step:
    """The step a task names, checked against the source digest the runner saw.

    Raises:
        PipelineError: The step cannot be found, or its code differs from the runner's.
    """
    found = lookup_step(task.module, task.qualname)
    if found is None:
        if "<locals>" in task.qualname:
            raise PipelineError(
                f"step '{task.step}' ({task.module}.{task.qualname}) is defined inside a "
                "function, so a new worker process cannot import it",
                hint="define steps at module level",
            )
        try:
            mod = _import(task.module, task.module_file)
        except ImportError as exc:
            raise PipelineError(
                f"step '{task.step}': cannot import module '{task.module}' in the worker: {exc}"
            ) from exc
        found = lookup_step(task.module, task.qualname)
        if found is None:
            obj: Any = mod
            for part in task.qualname.split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, Step):
                found = obj
    if found is None:
        raise PipelineError(
            f"step '{task.step}': {task.module}.{task.qualname} is not a step in the worker"
        )
    if found.source_digest != task.source_digest:
        raise PipelineError(
            f"step '{task.step}': the worker's code of {task.module}.{task.qualname} differs "
            "from the code the run was planned with",
            hint="make workers run the same code version as the process that starts the run",
        )
    return found


def _split_outputs(task: StepTask, value: Any) -> dict[str, Any]:
    if len(task.outputs) == 1:
        return {task.outputs[0]: value}
    if not isinstance(value, tuple | list) or len(value) != len(task.outputs):
        got = f"{len(value)} values" if isinstance(value, tuple | list) else type(value).__name__
        raise PipelineError(
            f"step '{task.step}' declares outputs {', '.join(task.outputs)} and must return "
            f"a tuple of {len(task.outputs)} values, but returned {got}"
        )
    return dict(zip(task.outputs, value, strict=True))


def execute_task(task: StepTask) -> StepResult:
    """Run one attempt of a step in this process; a step that raises gives ``ok=False``."""
    global _CURRENT
    started = _utcnow()
    try:
        step = resolve_step(task)
        artifacts = _artifacts(task.artifacts_url)
        kwargs = dict(task.params)
        for arg, digest in task.inputs.items():
            kwargs[arg] = load_value(digest, artifacts)
        _CURRENT = task
        try:
            try:
                returned = step.func(**kwargs)
            except (Exception, SystemExit) as exc:
                _run_end_hooks(task, exc)
                raise
            _run_end_hooks(task, None)
        finally:
            _CURRENT = None
        values = _split_outputs(task, returned)
        outputs = {
            name: save_value(v, artifacts, step=task.step, output=name)
            for name, v in values.items()
        }
    except (Exception, SystemExit) as exc:
        return StepResult(
            step=task.step,
            attempt=task.attempt,
            ok=False,
            started_at=started,
            ended_at=_utcnow(),
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    return StepResult(
        step=task.step,
        attempt=task.attempt,
        ok=True,
        outputs=outputs,
        started_at=started,
        ended_at=_utcnow(),
    )


# -- log capture ----------------------------------------------------------------------------


class TailBuffer(io.TextIOBase):
    """A text sink that keeps only the last ``limit`` characters written to it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._parts.append(s)
        self._size += len(s)
        if self._size > 2 * self.limit:
            self._trim()
        return len(s)

    def _trim(self) -> None:
        text = "".join(self._parts)
        keep = text[-self.limit :]
        self.dropped += len(text) - len(keep)
        self._parts = [keep]
        self._size = len(keep)

    def getvalue(self) -> str:
        """The kept text, with a note of how much was dropped."""
        if self._size > self.limit:
            self._trim()
        text = "".join(self._parts)
        if self.dropped:
            return f"[... {self.dropped} characters dropped ...]\n{text}"
        return text


@contextmanager
def _step_logging(stream: Any, *, replace: bool) -> Iterator[None]:
    """Send ``logging`` records (INFO and up, unless configured lower) to ``stream``."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    old_handlers, old_level = list(root.handlers), root.level
    if replace:
        root.handlers = [handler]
    else:
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        handler.flush()
        root.handlers = old_handlers
        root.setLevel(old_level)


@contextmanager
def capture_python(limit: int) -> Iterator[TailBuffer]:
    """Capture ``sys.stdout``, ``sys.stderr`` and logging records in this process.

    Output written straight to the file descriptors (C extensions, subprocesses) is not
    captured: the inline executor shares them with the caller.
    """
    buf = TailBuffer(limit)
    with redirect_stdout(buf), redirect_stderr(buf), _step_logging(buf, replace=False):
        yield buf


def redirect_process_output(path: str) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at ``path``.

    For a worker process that runs one step: C-level output, subprocesses and a crash dump
    (faulthandler) land in the file too, and the parent reads the file even if the worker
    dies. The Python streams are opened afresh because a forked child may inherit them
    locked by another thread of its parent.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    faulthandler.enable(file=sys.stderr)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.handlers = [handler]
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def read_log_tail(path: str, limit: int) -> str:
    """The last ``limit`` bytes of the file at ``path`` as text, noting what was dropped."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size > limit:
                f.seek(size - limit)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        return f"[... {size - limit} bytes dropped ...]\n{text}"
    return text
