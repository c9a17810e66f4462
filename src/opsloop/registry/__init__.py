"""Model registry: package models safely, register versions, resolve URIs, load models.

A model version is a folder artifact holding the model (skops for scikit-learn) and an
``MLmodel`` file; loading verifies digests and trusted types and never unpickles.
"""

from opsloop.registry.api import (
    LoadedModel,
    delete_alias,
    export_model,
    get_model,
    get_model_version,
    list_model_versions,
    list_models,
    load_model,
    register_model,
    set_alias,
    update_model,
    update_model_version,
    verify_model,
)
from opsloop.registry.packaging import (
    METADATA_FILE,
    ModelMetadata,
    PackagedModel,
    load_model_dir,
    read_metadata,
    save_model,
    verify_model_dir,
)
from opsloop.registry.signature import (
    ColumnSpec,
    ModelSignature,
    OutputSpec,
    infer_signature,
)
from opsloop.registry.uri import ModelRef, parse_model_uri, resolve_model_uri

__all__ = [
    "METADATA_FILE",
    "ColumnSpec",
    "LoadedModel",
    "ModelMetadata",
    "ModelRef",
    "ModelSignature",
    "OutputSpec",
    "PackagedModel",
    "delete_alias",
    "export_model",
    "get_model",
    "get_model_version",
    "infer_signature",
    "list_model_versions",
    "list_models",
    "load_model",
    "load_model_dir",
    "parse_model_uri",
    "read_metadata",
    "register_model",
    "resolve_model_uri",
    "save_model",
    "set_alias",
    "update_model",
    "update_model_version",
    "verify_model",
    "verify_model_dir",
]
