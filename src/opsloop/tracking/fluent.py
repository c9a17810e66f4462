"""Tracking from any Python code, in the style of MLflow's fluent API.

    with opsloop.start_run(name="baseline") as run:
        opsloop.log_params({"lr": 0.1})
        for i in range(100):
            opsloop.log_metric("loss", 1 / (i + 1), step=i)
        opsloop.log_artifact("model.json")

Metric points are buffered (see :class:`MetricBuffer`) and written in batches; the buffer is
flushed when the run ends, when the code inside the ``with`` raises, and at process exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from opsloop.context import Project, current_project
from opsloop.errors import TrackingError
from opsloop.gitutil import git_info
from opsloop.store import RunInfo, Store
from opsloop.tracking.buffer import MetricBuffer


class ActiveRun:
    """A run in progress; a context manager that ends the run on exit.

    Attributes:
        id: The run id.
        name: The run name.
    """

    def __init__(self, info: RunInfo, project: Project) -> None:
        self.info = info
        self.id = info.id
        self.name = info.name
        self.project = project
        self.store: Store = project.store
        self._buffer = MetricBuffer(
            self.store, info.id, capacity=project.settings.metric_buffer_size
        )
        self._steps: dict[str, int] = {}
        self.ended = False

    # Metric logging is the hot path; keep it to a few dict and list operations.
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Log one metric point; ``step`` defaults to the next step of that key."""
        if self.ended:
            raise TrackingError(f"run {self.id} has ended; start a new run to log '{key}'")
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TrackingError(f"metric '{key}': value {value!r} is not a number") from None
        self._buffer.add(
            key, v, step, timestamp if timestamp is not None else int(time.time() * 1000)
        )

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step and time."""
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            self.log_metric(k, v, step=step, timestamp=ts)

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters (fixed once logged)."""
        self.store.log_params(self.id, params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (overwritable)."""
        self.store.set_tags(self.id, tags)

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Store a file or folder in the artifact store and record it; returns its digest."""
        p = Path(path)
        if not p.exists():
            raise TrackingError(f"cannot log artifact: {p} does not exist")
        if p.is_dir():
            digest = self.project.artifacts.put_dir(p)
            size = self.project.artifacts.get_manifest(digest).size
            kind = "dir"
        else:
            digest = self.project.artifacts.put_file(p)
            size = p.stat().st_size
            kind = "file"
        self.store.log_artifact(self.id, name or p.name, digest, size, kind)
        return digest

    def flush(self) -> None:
        """Write buffered metric points now."""
        self._buffer.flush()

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush and end the run (idempotent)."""
        if self.ended:
            return
        try:
            self._buffer.close()
        except Exception as exc:
            status, error = "failed", f"could not write metrics: {exc}"
            raise
        finally:
            self.ended = True
            self.store.finish_run(self.id, status, error)
            _forget(self)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", "interrupted")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} {self.id}>"


_stack: list[ActiveRun] = []
_stack_lock = threading.RLock()
_git_cache: dict[Path, tuple[float, str | None]] = {}


def _commit_of(project: Project) -> str | None:
    now = time.monotonic()
    hit = _git_cache.get(project.dir)
    if hit is not None and now - hit[0] < 5:
        return hit[1]
    info = git_info(project.dir)
    commit = None if info is None else info.commit + ("-dirty" if info.dirty else "")
    _git_cache[project.dir] = (now, commit)
    return commit


def start_run(
    name: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = False,
    parent_id: str | None = None,
    kind: str = "run",
    project: Project | None = None,
) -> ActiveRun:
    """Start a run and make it the active one.

    Args:
        name: Run name (default ``run-<time>``).
        params: Parameters to log at start.
        tags: Tags to set at start.
        nested: Start a child of the active run instead of refusing to.
        parent_id: Explicit parent run.
        kind: ``run`` for user code; ``trial`` and ``step`` are used by opsloop itself.
        project: Project to track into (default: the current project).
    """
    proj = project or current_project()
    with _stack_lock:
        if _stack and not nested and parent_id is None:
            raise TrackingError(
                f"run {_stack[-1].id} is already active",
                hint="end it first, or pass nested=True to start a child run",
            )
        if nested and parent_id is None and _stack:
            parent_id = _stack[-1].id
        info = proj.store.create_run(
            name or time.strftime("run-%Y%m%d-%H%M%S"),
            kind=kind,
            parent_id=parent_id,
            project=proj.name,
            git_commit=_commit_of(proj),
            source=Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
            params=params,
            tags=tags,
        )
        run = ActiveRun(info, proj)
        _stack.append(run)
        _install_exit_hooks()
        return run


def _forget(run: ActiveRun) -> None:
    with _stack_lock:
        if run in _stack:
            _stack.remove(run)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def _step_run() -> ActiveRun | None:
    """Inside a pipeline step: a run of kind ``step`` under the pipeline run, made on first use.

    It is ended by a step-end hook in the worker, which is where the step's metrics are flushed.
    """
    worker = sys.modules.get("opsloop.pipeline.worker")
    if worker is None:
        return None
    task = worker.current_task()
    if task is None:
        return None
    run = start_run(task.step, kind="step", parent_id=task.run_id)
    worker.add_step_end_hook(_end_step_run)
    return run


def _end_step_run(task: Any, error: BaseException | None) -> None:
    with _stack_lock:
        runs = [r for r in _stack if r.info.kind == "step" and r.info.parent_id == task.run_id]
    for run in runs:
        if error is None:
            run.end("finished")
        else:
            run.end("failed", f"{type(error).__name__}: {error}")


def _require_run() -> ActiveRun:
    # No lock: reading the last item of a list is atomic, and this is on every metric call.
    run = _stack[-1] if _stack else None
    if run is None:
        run = _step_run()
    if run is None:
        raise TrackingError(
            "no active run", hint="wrap the code in 'with opsloop.start_run(): ...'"
        )
    return run


def end_run(status: str = "finished") -> None:
    """End the active run."""
    _require_run().end(status)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log a metric point to the active run."""
    _require_run().log_metric(key, value, step)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log several metrics to the active run."""
    _require_run().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    """Log one parameter to the active run."""
    _require_run().log_params({key: value})


def log_params(params: dict[str, Any]) -> None:
    """Log parameters to the active run."""
    _require_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run."""
    _require_run().set_tags({key: value})


def set_tags(tags: dict[str, Any]) -> None:
    """Set tags on the active run."""
    _require_run().set_tags(tags)


def log_artifact(path: str | Path, name: str | None = None) -> str:
    """Log a file or folder to the active run; returns its digest."""
    return _require_run().log_artifact(path, name)


# -- process exit --------------------------------------------------------------------------

_hooks_installed = False
_uncaught: BaseException | None = None
_previous_excepthook: Callable[..., Any] | None = None


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    global _uncaught
    _uncaught = exc
    if _previous_excepthook is not None:
        _previous_excepthook(exc_type, exc, tb)


def _end_all_at_exit() -> None:
    with _stack_lock:
        runs = list(reversed(_stack))
    for run in runs:
        if _uncaught is not None:
            status, error = "failed", f"{type(_uncaught).__name__}: {_uncaught}"
        else:
            status, error = "finished", None
        try:
            run.end(status, error)
        except Exception as exc:
            print(f"opsloop: could not end run {run.id} at exit: {exc}", file=sys.stderr)


def _install_exit_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_end_all_at_exit)
