"""The model server: one ASGI app that serves model versions.

* :mod:`~opsloop.serve.app` — the endpoints: Open Inference Protocol (V2), MLflow-style
  ``/invocations``, ``POST /v1/feedback`` for labels, ``/v1/admin/models`` to change what is
  served, health and Prometheus ``/metrics``; :mod:`~opsloop.serve.auth` — the bearer tokens
  and scopes that guard them; :mod:`~opsloop.serve.server` runs the app under uvicorn;
* :mod:`~opsloop.serve.router` — the versions inside one server, warmed before they are routed
  to, with weighted canary and shadow routing; :mod:`~opsloop.serve.batching` — micro-batches
  of concurrent requests; :mod:`~opsloop.serve.codec` — request decoding and response encoding;
* :mod:`~opsloop.serve.predlog` — the bounded, batched prediction and feedback log, written to
  a file sink (:mod:`~opsloop.serve.sinks`, JSON Lines or Parquet) or into the metadata store
  (:mod:`~opsloop.serve.store_sink`), where the monitors read it;
  :mod:`~opsloop.serve.feedback` — which labels are taken;
* :mod:`~opsloop.serve.base` — the contracts: what a servable model is
  (:class:`ServableModel`, :class:`SklearnServable`, :class:`ColumnSpec`), the records that
  get logged and the sinks they go to. The server imports no model registry: a registry's
  loaded model satisfies :class:`ServableModel`.

The contracts are imported with the package; the server's names (the app, the router, the
sinks, :func:`serve` …) on first use, so that code needing only the contracts does not load
Starlette, uvicorn or prometheus-client. Should that stack be missing, using a server name
raises :class:`~opsloop.errors.MissingDependencyError` naming ``pip install 'opsloop[serve]'``.
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
