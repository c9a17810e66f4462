"""opsloop: the whole life of a machine-learning model as one closed loop.

The public API lives in this one flat namespace. Names are imported on first use, so that
``import opsloop`` (and every CLI call) stays fast even though the ML parts pull in heavy
libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "OpsloopError": "opsloop.errors",
    "ConfigError": "opsloop.errors",
    "SpecError": "opsloop.errors",
    "NotFoundError": "opsloop.errors",
    "MissingDependencyError": "opsloop.errors",
    "StoreError": "opsloop.errors",
    "ArtifactError": "opsloop.errors",
    "DigestMismatchError": "opsloop.errors",
    "TrackingError": "opsloop.errors",
    "PipelineError": "opsloop.errors",
    "StepFailedError": "opsloop.errors",
    "RegistryError": "opsloop.errors",
    "ModelLoadError": "opsloop.errors",
    "UntrustedTypeError": "opsloop.errors",
    "DataError": "opsloop.errors",
    "ContractError": "opsloop.errors",
    "MLError": "opsloop.errors",
    # project and configuration
    "Project": "opsloop.context",
    "current_project": "opsloop.context",
    "open_project": "opsloop.context",
    "use_project": "opsloop.context",
    "Settings": "opsloop.settings",
    "ProjectSpec": "opsloop.spec",
    "load_spec": "opsloop.spec",
    # stores
    "Store": "opsloop.store",
    "open_store": "opsloop.store",
    "ArtifactStore": "opsloop.artifacts",
    "open_artifact_store": "opsloop.artifacts",
    # pipelines
    "step": "opsloop.pipeline",
    "run_pipeline": "opsloop.pipeline",
    "load_output": "opsloop.pipeline",
    "register_materializer": "opsloop.pipeline",
    "Materializer": "opsloop.pipeline",
    "PipelineRunResult": "opsloop.pipeline",
    # model registry
    "register_model": "opsloop.registry",
    "load_model": "opsloop.registry",
    "save_model": "opsloop.registry",
    "LoadedModel": "opsloop.registry",
    # tracking
    "ActiveRun": "opsloop.tracking",
    "start_run": "opsloop.tracking",
    "end_run": "opsloop.tracking",
    "active_run": "opsloop.tracking",
    "log_param": "opsloop.tracking",
    "log_params": "opsloop.tracking",
    "log_metric": "opsloop.tracking",
    "log_metrics": "opsloop.tracking",
    "log_artifact": "opsloop.tracking",
    "set_tag": "opsloop.tracking",
    "set_tags": "opsloop.tracking",
}

__all__ = [
    "ActiveRun",
    "ArtifactError",
    "ArtifactStore",
    "ConfigError",
    "ContractError",
    "DataError",
    "DigestMismatchError",
    "LoadedModel",
    "MLError",
    "Materializer",
    "MissingDependencyError",
    "ModelLoadError",
    "NotFoundError",
    "OpsloopError",
    "PipelineError",
    "PipelineRunResult",
    "Project",
    "ProjectSpec",
    "RegistryError",
    "Settings",
    "SpecError",
    "StepFailedError",
    "Store",
    "StoreError",
    "TrackingError",
    "UntrustedTypeError",
    "active_run",
    "current_project",
    "end_run",
    "load_model",
    "load_output",
    "load_spec",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "open_artifact_store",
    "open_project",
    "open_store",
    "pipeline",
    "register_materializer",
    "register_model",
    "run_pipeline",
    "save_model",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "use_project",
]


def __getattr__(name: str) -> Any:
    if name == "pipeline":
        # The subpackage opsloop.pipeline is itself callable as the @pipeline decorator.
        return importlib.import_module("opsloop.pipeline")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opsloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


if TYPE_CHECKING:
    from opsloop import pipeline
    from opsloop.artifacts import (
        ArtifactStore,
        open_artifact_store,
    )
    from opsloop.context import (
        Project,
        current_project,
        open_project,
        use_project,
    )
    from opsloop.errors import (
        ArtifactError,
        ConfigError,
        ContractError,
        DataError,
        DigestMismatchError,
        MissingDependencyError,
        MLError,
        ModelLoadError,
        NotFoundError,
        OpsloopError,
        PipelineError,
        RegistryError,
        SpecError,
        StepFailedError,
        StoreError,
        TrackingError,
        UntrustedTypeError,
    )
    from opsloop.pipeline import (
        Materializer,
        PipelineRunResult,
        load_output,
        register_materializer,
        run_pipeline,
        step,
    )
    from opsloop.registry import (
        LoadedModel,
        load_model,
        register_model,
        save_model,
    )
    from opsloop.settings import (
        Settings,
    )
    from opsloop.spec import (
        ProjectSpec,
        load_spec,
    )
    from opsloop.store import (
        Store,
        open_store,
    )
    from opsloop.tracking import (
        ActiveRun,
        active_run,
        end_run,
        log_artifact,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        set_tag,
        set_tags,
        start_run,
    )
