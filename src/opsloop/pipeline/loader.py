"""Find a pipeline by name: in ``opsloop.yaml``'s ``pipelines:`` map or as ``module:function``."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from opsloop.errors import PipelineError
from opsloop.pipeline.step import Pipeline

if TYPE_CHECKING:
    from pathlib import Path

    from opsloop.spec import ProjectSpec


def load_pipeline(ref: str, *, project_dir: Path, spec: ProjectSpec | None = None) -> Pipeline:
    """Import the pipeline ``ref`` names, with the project folder importable.

    Args:
        ref: A name from ``pipelines:`` in opsloop.yaml, or ``module:function``.
        project_dir: The project folder; modules are imported from it first.
        spec: The project's spec, for the ``pipelines:`` map.

    Raises:
        PipelineError: The name is unknown, the module cannot be imported, or the object is
            not a ``@pipeline``.
    """
    known = dict(spec.pipelines) if spec is not None else {}
    target = known.get(ref, ref)
    if ":" not in target:
        names = ", ".join(sorted(known)) or "(none declared)"
        raise PipelineError(
            f"unknown pipeline '{ref}': opsloop.yaml declares {names}",
            hint="name one of them, or give 'module:function'",
        )
    module_name, _, attr = target.partition(":")
    root = str(project_dir.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] and exc.name != module_name:
            raise PipelineError(
                f"pipeline '{ref}': importing module '{module_name}' failed: {exc}"
            ) from exc
        raise PipelineError(
            f"pipeline '{ref}': module '{module_name}' not found in {project_dir}"
        ) from exc
    except Exception as exc:
        raise PipelineError(
            f"pipeline '{ref}': importing module '{module_name}' failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise PipelineError(f"pipeline '{ref}': module '{module_name}' has no '{attr}'")
    if not isinstance(obj, Pipeline):
        raise PipelineError(
            f"pipeline '{ref}': '{module_name}:{attr}' is not a pipeline",
            hint="decorate the function with @opsloop.pipeline",
        )
    return obj
