"""Model server: Open Inference Protocol (V2) and MLflow-style endpoints, micro-batching,
canary and shadow routing, a prediction log and Prometheus metrics.

The contracts (:class:`ColumnSpec`, :class:`ServableModel`, :class:`SklearnServable`, the
record and sink types) need only opsloop's core dependencies, so a model registry can import
them anywhere. The server itself needs the ``serve`` extra (Starlette, uvicorn,
prometheus-client, orjson); its names are imported on first use and raise
:class:`~opsloop.errors.MissingDependencyError` when the extra is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opsloop.errors import MissingDependencyError
from opsloop.serve.base import (
    ColumnSpec,
    ColumnsView,
    FeedbackRecord,
    FeedbackSink,
    FeedbackTarget,
    PredictionRecord,
    PredictionSink,
    ServableModel,
    SklearnServable,
    signature_from_frame,
)

if TYPE_CHECKING:
    from opsloop.serve.app import ServerState, create_app
    from opsloop.serve.batching import MicroBatcher
    from opsloop.serve.config import ServerConfig
    from opsloop.serve.predlog import RecordLog
    from opsloop.serve.router import ModelRouter
    from opsloop.serve.server import run_server, serve, uvicorn_config
    from opsloop.serve.sinks import JsonlSink, ParquetSink, open_sink, read_jsonl

__all__ = [
    "ColumnSpec",
    "ColumnsView",
    "FeedbackRecord",
    "FeedbackSink",
    "FeedbackTarget",
    "JsonlSink",
    "MicroBatcher",
    "ModelRouter",
    "ParquetSink",
    "PredictionRecord",
    "PredictionSink",
    "RecordLog",
    "ServableModel",
    "ServerConfig",
    "ServerState",
    "SklearnServable",
    "create_app",
    "open_sink",
    "read_jsonl",
    "run_server",
    "serve",
    "signature_from_frame",
    "uvicorn_config",
]

_LAZY = {
    "ServerState": "app",
    "create_app": "app",
    "MicroBatcher": "batching",
    "ServerConfig": "config",
    "RecordLog": "predlog",
    "ModelRouter": "router",
    "run_server": "server",
    "serve": "server",
    "uvicorn_config": "server",
    "JsonlSink": "sinks",
    "ParquetSink": "sinks",
    "open_sink": "sinks",
    "read_jsonl": "sinks",
}
_EXTRA_MODULES = {"starlette", "uvicorn", "prometheus_client", "orjson", "uvloop", "httptools"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'opsloop.serve' has no attribute {name!r}")
    try:
        loaded = importlib.import_module(f"opsloop.serve.{module}")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in _EXTRA_MODULES:
            raise MissingDependencyError(missing, "serve") from exc
        raise
    value = getattr(loaded, name)
    globals()[name] = value
    return value
