"""opsloop: the whole life of a machine-learning model as one closed loop.

The public API lives in this one flat namespace. Names are imported on first use, so that
``import opsloop`` (and every CLI call) stays fast even though the ML parts pull in heavy
libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The one list of the public names, each with the module that defines it; the lookup on first
# use reads it. ``__all__`` (a literal list, as type checkers and linters need) and the imports
# for type checkers at the end of this file repeat it: tests/test_exports.py checks that both
# match it, and that every error class of opsloop.errors is in it.
_EXPORTS: dict[str, str] = {
    # the subpackage, itself callable as the @pipeline decorator
    "pipeline": "opsloop.pipeline",
    # errors: every class of opsloop.errors
    "OpsloopError": "opsloop.errors",
    "AIOpsError": "opsloop.errors",
    "AlreadyExistsError": "opsloop.errors",
    "ArtifactError": "opsloop.errors",
    "ConfigError": "opsloop.errors",
    "ContractError": "opsloop.errors",
    "DataError": "opsloop.errors",
    "DigestMismatchError": "opsloop.errors",
    "GitOpsError": "opsloop.errors",
    "InvalidRequestError": "opsloop.errors",
    "MLError": "opsloop.errors",
    "MaterializerError": "opsloop.errors",
    "MigrationError": "opsloop.errors",
    "MissingDependencyError": "opsloop.errors",
    "ModelLoadError": "opsloop.errors",
    "MonitorError": "opsloop.errors",
    "NotFoundError": "opsloop.errors",
    "PipelineError": "opsloop.errors",
    "PluginError": "opsloop.errors",
    "RegistryError": "opsloop.errors",
    "RollbackError": "opsloop.errors",
    "SecurityError": "opsloop.errors",
    "SignatureError": "opsloop.errors",
    "AuditChainError": "opsloop.errors",
    "PermissionDeniedError": "opsloop.errors",
    "AuthenticationError": "opsloop.errors",
    "ServingError": "opsloop.errors",
    "SpecError": "opsloop.errors",
    "StepFailedError": "opsloop.errors",
    "StoreError": "opsloop.errors",
    "TrackingError": "opsloop.errors",
    "UnreadableSkopsFileError": "opsloop.errors",
    "UntrustedTypeError": "opsloop.errors",
    "WebhookPayloadError": "opsloop.errors",
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
    "AIOpsError",
    "ActiveRun",
    "AlreadyExistsError",
    "ArtifactError",
    "ArtifactStore",
    "AuditChainError",
    "AuthenticationError",
    "ConfigError",
    "ContractError",
    "DataError",
    "DigestMismatchError",
    "GitOpsError",
    "InvalidRequestError",
    "LoadedModel",
    "MLError",
    "Materializer",
    "MaterializerError",
    "MigrationError",
    "MissingDependencyError",
    "ModelLoadError",
    "MonitorError",
    "NotFoundError",
    "OpsloopError",
    "PermissionDeniedError",
    "PipelineError",
    "PipelineRunResult",
    "PluginError",
    "Project",
    "ProjectSpec",
    "RegistryError",
    "RollbackError",
    "SecurityError",
    "ServingError",
    "Settings",
    "SignatureError",
    "SpecError",
    "StepFailedError",
    "Store",
    "StoreError",
    "TrackingError",
    "UnreadableSkopsFileError",
    "UntrustedTypeError",
    "WebhookPayloadError",
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
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opsloop' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    # A subpackage (``pipeline``) is exported itself, any other name is an attribute.
    value = loaded if module == f"{__name__}.{name}" else getattr(loaded, name)
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
        AIOpsError,
        AlreadyExistsError,
        ArtifactError,
        AuditChainError,
        AuthenticationError,
        ConfigError,
        ContractError,
        DataError,
        DigestMismatchError,
        GitOpsError,
        InvalidRequestError,
        MaterializerError,
        MigrationError,
        MissingDependencyError,
        MLError,
        ModelLoadError,
        MonitorError,
        NotFoundError,
        OpsloopError,
        PermissionDeniedError,
        PipelineError,
        PluginError,
        RegistryError,
        RollbackError,
        SecurityError,
        ServingError,
        SignatureError,
        SpecError,
        StepFailedError,
        StoreError,
        TrackingError,
        UnreadableSkopsFileError,
        UntrustedTypeError,
        WebhookPayloadError,
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
