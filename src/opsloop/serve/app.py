"""The ASGI application: V2 (Open Inference Protocol), MLflow-style ``/invocations``,
metrics, feedback and admin endpoints over one :class:`~opsloop.serve.router.ModelRouter`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import hashlib
import ipaddress
import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from opsloop.errors import InvalidRequestError, NotFoundError, OpsloopError, ServingError
from opsloop.serve.auth import Scope as TokenScope
from opsloop.serve.auth import TokenAuth
from opsloop.serve.base import (
    ColumnsView,
    FeedbackRecord,
    FeedbackTarget,
    PiiColumnsView,
    PredictionRecord,
    ServableModel,
)
from opsloop.serve.batching import MicroBatcher
from opsloop.serve.codec import (
    Columns,
    decode_invocations,
    decode_v2,
    encode_v2_response,
    ignored_note,
    loads_json,
    media_type,
    parse_v2,
    predict_method,
    v2_outputs,
)
from opsloop.serve.feedback import LABELLED, ClientRateLimiter, LabelSpec, RecentRequests
from opsloop.serve.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from opsloop.serve.predlog import RecordLog
from opsloop.serve.router import ModelRouter, VersionSlot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from opsloop.serve.config import ServerConfig

__all__ = ["InferenceRoutes", "ServerState", "create_app"]

logger = logging.getLogger("opsloop.serve")

_JSON = "application/json"
_JSON_BYTES = b"application/json"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
# Random request ids are sliced from a block of OS randomness fetched at once: one syscall
# per 256 requests instead of one per request (uuid4 and token_hex cost one each).
_ID_BLOCK = 16 * 256
_ID_HEX = 32
# A label on a metric stands for anything that is not loaded, so requests cannot mint series.
_UNKNOWN = "unknown"
# MLflow's error codes (databricks ErrorCode names) for the statuses /invocations answers.
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    408: "BAD_REQUEST",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
}
_V2_CONTENT_TYPES = frozenset({"", "application/json"})
_BINARY = "application/octet-stream"
# Sets of ignored columns remembered (for their warning text, and to log each once): a
# client sending a new set with every request must not grow memory or flood the log.
_MAX_IGNORED_SETS = 1024


class HTTPError(Exception):
    """An error answer: status, message, the field at fault and extra response headers."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def _server_version() -> str:
    try:
        return metadata.version("opsloop")
    except Exception:
        return "0"


class ServerState:
    """Everything the request handlers share; kept on ``app.state.server``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Personal-data columns the prediction log hashes or leaves out (policy keep: none).
        self._pii = frozenset(config.pii_columns) if config.pii_policy != "keep" else frozenset()
        self._pii_salt = config.pii_salt.get_secret_value().encode() if config.pii_salt else b""
        self.metrics = ServerMetrics()
        self.executor = ThreadPoolExecutor(
            max_workers=config.predict_threads, thread_name_prefix="opsloop-predict"
        )
        self.router = ModelRouter(self._batcher_for, self.metrics, warmup=config.warmup)
        self.predictions: RecordLog[PredictionRecord] | None = None
        self.feedback: RecordLog[FeedbackRecord] | None = None
        if config.prediction_sink is not None:
            self.predictions = RecordLog(
                config.prediction_sink,
                name="predictions",
                max_queue=config.log_queue_size,
                batch_size=config.log_batch_size,
                flush_interval=config.log_flush_interval_s,
                metrics=self.metrics,
                dead_letter=RecordLog.dead_letter_for(config.prediction_sink),
            )
        if config.feedback_sink is not None:
            self.feedback = RecordLog(
                config.feedback_sink,
                name="feedback",
                max_queue=config.log_queue_size,
                batch_size=config.log_batch_size,
                flush_interval=config.log_flush_interval_s,
                metrics=self.metrics,
                dead_letter=RecordLog.dead_letter_for(config.feedback_sink),
            )
        self.ready = False
        self.startup_error: Exception | None = None
        self.shadow_tasks: set[asyncio.Task[None]] = set()
        self.version = _server_version()
        self._ids = ""
        self._id_pos = 0
        tokens: list[tuple[str, tuple[TokenScope, ...]]] = []
        if config.token is not None:
            tokens.append((config.token.get_secret_value(), ("predict", "feedback")))
        if config.feedback_token is not None:
            tokens.append((config.feedback_token.get_secret_value(), ("feedback",)))
        if config.admin_token is not None:
            tokens.append((config.admin_token.get_secret_value(), ("predict", "feedback", "admin")))
        self.auth = TokenAuth(tokens)
        self.token_required = config.token is not None
        self.feedback_token_required = self.token_required or config.feedback_token is not None
        self.guard_admin = config.admin_token is not None
        # Only a server that takes feedback needs to know which requests it answered.
        self.recent = (
            RecentRequests(config.recent_requests) if config.feedback_sink is not None else None
        )
        self.feedback_limiter = ClientRateLimiter(config.feedback_rate, config.feedback_burst)
        self._ignored_notes: dict[tuple[str, bytes], str] = {}

    def _batcher_for(self, model: ServableModel) -> MicroBatcher:
        cfg = self.config
        metrics = self.metrics
        name, version = model.name, str(model.version)
        batch_hist = metrics.child(metrics.batch_size, name, version)
        predict_hist = metrics.child(metrics.predict_latency, name, version)
        rows = metrics.child(metrics.rows, name, version)

        def on_batch(n: int, seconds: float) -> None:
            batch_hist.observe(n)
            predict_hist.observe(seconds)
            rows.inc(n)

        return MicroBatcher(
            model,
            max_batch_size=cfg.max_batch_size,
            max_wait_ms=cfg.max_wait_ms,
            enabled=cfg.batching,
            offload=cfg.offload,
            offload_threshold_ms=cfg.offload_threshold_ms,
            executor=self.executor,
            on_batch=on_batch,
        )

    async def startup(self) -> None:
        """Start the logs and load every configured model (warmed)."""
        if self.predictions is not None:
            self.predictions.start()
        if self.feedback is not None:
            self.feedback.start()
        by_name: dict[str, list[Any]] = {}
        for model in self.config.models:
            by_name.setdefault(model.name, []).append(model)
        for name, models in by_name.items():
            first = str(models[0].version)
            for model in models:
                await self.router.load(model, traffic={first: 100.0})
            await self.router.set_traffic(
                name,
                self.config.traffic.get(name, {first: 100.0}),
                self.config.shadow.get(name, []),
            )
        # Everything loaded so far lives as long as the server; freezing it keeps the cyclic
        # garbage collector from rescanning it, which otherwise shows up as latency spikes.
        gc.collect()
        gc.freeze()
        self.ready = True

    async def shutdown(self) -> None:
        """Answer what is queued, wait for shadows, flush the logs, stop the threads."""
        self.ready = False
        for slot in self.router.slots():
            await slot.batcher.drain(self.config.graceful_timeout_s)
        if self.shadow_tasks:
            await asyncio.wait(list(self.shadow_tasks), timeout=self.config.graceful_timeout_s)
        if self.predictions is not None:
            await self.predictions.close(self.config.graceful_timeout_s)
        if self.feedback is not None:
            await self.feedback.close(self.config.graceful_timeout_s)
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- helpers ------------------------------------------------------------------------------

    async def read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        """The request body, refusing oversized (413) or too slow (408) ones."""
        limit = self.config.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise HTTPError(400, f"invalid Content-Length {length!r}") from None
            if declared > limit:
                raise HTTPError(
                    413, f"request body of {declared} bytes exceeds the limit of {limit} bytes"
                )
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise HTTPError(400, "the client disconnected while sending the body")
                    chunk = message.get("body", b"")
                    if chunk:
                        size += len(chunk)
                        if size > limit:
                            raise HTTPError(413, f"request body exceeds the limit of {limit} bytes")
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise HTTPError(
                408, f"the request body was not received within {self.config.body_timeout_s}s"
            ) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def metric_labels(self, model: str, version: str) -> tuple[str, str]:
        """``(model, version)`` as metric labels: names of loaded models and versions only,
        anything else ``unknown`` (a request names them, so it must not mint new series)."""
        router = self.router
        if not model:
            return "", ""
        if not router.known(model):
            return _UNKNOWN, _UNKNOWN if version else ""
        if version and not router.known(model, version):
            return model, _UNKNOWN
        return model, version

    def error_answer(
        self,
        exc: HTTPError,
        model: str,
        version: str,
        request_id: str | None,
        *,
        mlflow: bool = False,
    ) -> tuple[int, bytes, dict[str, str]]:
        """A JSON error answer (status, body, headers), counted in the metrics."""
        label_model, label_version = self.metric_labels(model, version)
        self.metrics.child(self.metrics.errors, label_model, label_version, str(exc.status)).inc()
        content: dict[str, Any]
        if mlflow:
            content = {
                "error_code": _MLFLOW_CODES.get(exc.status, "INTERNAL_ERROR"),
                "message": exc.message,
            }
        else:
            content = {"error": exc.message}
        if exc.field is not None:
            content["field"] = exc.field
        headers = {"x-request-id": request_id} if request_id else {}
        if exc.headers:
            headers.update(exc.headers)
        if exc.status in (401, 408, 413):
            # The body was not read to its end; the connection cannot be reused.
            headers["connection"] = "close"
        return exc.status, orjson.dumps(content), headers

    def error_response(
        self, exc: HTTPError, model: str, version: str, request_id: str | None
    ) -> Response:
        """:meth:`error_answer` as a Starlette response."""
        status, body, headers = self.error_answer(exc, model, version, request_id)
        return Response(body, status, headers, _JSON)

    def new_request_id(self) -> str:
        """An unguessable request id: 128 random bits as 32 hex digits.

        Ids are what a label is attached to, so they must not be predictable from the ones a
        client has seen. Only the event loop calls this; no lock is needed.
        """
        pos = self._id_pos
        pool = self._ids
        if pos >= len(pool):
            pool = self._ids = os.urandom(_ID_BLOCK).hex()
            pos = 0
        self._id_pos = pos + _ID_HEX
        return pool[pos : pos + _ID_HEX]

    def check_token(self, authorization: str | None, scope: TokenScope) -> None:
        """Refuse (401) a request without a token granting ``scope``."""
        if not self.auth.allows(authorization, scope):
            raise HTTPError(
                401,
                f"missing or wrong token for '{scope}' (send Authorization: Bearer TOKEN)",
                headers={"www-authenticate": "Bearer"},
            )

    async def accept_feedback(self, body: bytes, client: str) -> int:
        """Check and queue the labels of one ``POST /v1/feedback``; returns how many.

        All or nothing: the first label at fault refuses the request, naming it.

        Raises:
            HTTPError: 400 a malformed item or a label that does not fit the model, 404 a
                request id not answered here (as far as the server or its sink remember),
                409 a request that has its label already, 413 too many labels at once, 429
                the client's rate is exceeded (with Retry-After), 501 no feedback sink.
        """
        log, recent = self.feedback, self.recent
        if log is None or recent is None:
            raise HTTPError(501, "this server has no feedback sink configured")
        payload = loads_json(body)
        listed = isinstance(payload, list)
        items = payload if listed else [payload]
        limit = self.config.max_feedback_labels
        if len(items) > limit:
            raise HTTPError(
                413, f"feedback: {len(items)} labels in one request; at most {limit}", "feedback"
            )
        if not items:
            raise HTTPError(400, "feedback: the list of labels is empty", "feedback")
        wait = self.feedback_limiter.take(client, len(items), time.monotonic())
        if wait:
            retry = max(1, math.ceil(wait))
            raise HTTPError(
                429,
                f"feedback: too many labels from {client}; retry in {retry} s",
                headers={"retry-after": str(retry)},
            )
        parsed: list[tuple[str, str, Any, str | None]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            where = f"[{i}]" if listed else ""
            if not isinstance(item, dict):
                raise HTTPError(400, f"feedback{where}: expected an object", f"feedback{where}")
            request_id = item.get("request_id")
            if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
                raise HTTPError(
                    400,
                    f"feedback{where}.request_id: a string of 1 to 256 characters is required",
                    f"request_id{where}",
                )
            if "label" not in item:
                raise HTTPError(400, f"feedback{where}.label: required", f"label{where}")
            model = item.get("model")
            if model is not None and not isinstance(model, str):
                raise HTTPError(400, f"feedback{where}.model: must be a string", f"model{where}")
            unknown = set(item) - {"request_id", "label", "model"}
            if unknown:
                field = sorted(unknown)[0]
                raise HTTPError(400, f"feedback{where}: unknown key '{field}'", field)
            if request_id in seen:
                raise HTTPError(
                    409,
                    f"feedback{where}.request_id: request '{request_id}' is labelled twice in "
                    "this request",
                    f"request_id{where}",
                )
            seen.add(request_id)
            parsed.append((where, request_id, item["label"], model))

        missing = [rid for _, rid, _, _ in parsed if recent.get(rid) is None]
        looked_up: Mapping[str, FeedbackTarget] = {}
        lookup = getattr(self.config.feedback_sink, "lookup", None)
        if missing and callable(lookup):
            try:
                looked_up = await asyncio.to_thread(lookup, missing)
            except Exception as exc:
                logger.warning("feedback: looking up %d request ids failed: %s", len(missing), exc)
                raise HTTPError(
                    503, f"feedback: the feedback sink could not look the requests up: {exc}"
                ) from exc
        records: list[FeedbackRecord] = []
        now = dt.datetime.now(dt.UTC)
        # No await from here on: what was checked is what gets marked.
        for where, request_id, label, model in parsed:
            found = recent.get(request_id)
            target = looked_up.get(request_id) if found is None else None
            if found is LABELLED or (target is not None and target.labelled):
                raise HTTPError(
                    409,
                    f"feedback{where}.request_id: request '{request_id}' has a label already",
                    f"request_id{where}",
                )
            if isinstance(found, tuple):
                spec, rows = found
            elif target is None:
                raise HTTPError(
                    404,
                    f"feedback{where}.request_id: no request '{request_id}' was answered "
                    "here (or it is too old to be remembered)",
                    f"request_id{where}",
                )
            else:
                spec = self.router.label_spec(target.model, target.version) or LabelSpec.unknown(
                    target.model, target.version
                )
                rows = target.rows
            if model is not None and model != spec.model:
                raise HTTPError(
                    400,
                    f"feedback{where}.model: request '{request_id}' was answered by model "
                    f"'{spec.model}', not '{model}'",
                    f"model{where}",
                )
            spec.check(label, rows, where)
            records.append(
                FeedbackRecord(request_id, label, now, spec.model, self.config.deployment)
            )
        for record in records:
            recent.mark_labelled(record.request_id)
        await log.put_many(records)
        return len(records)

    def ignored_warning(self, model: str, names: list[str]) -> str:
        """The warning for columns a request sent beyond the signature, logged once per
        model and set of columns (in any order)."""
        ordered = sorted(names)
        # A digest, not the names: a set may hold thousands of long names.
        key = (model, hashlib.blake2b("\0".join(ordered).encode(), digest_size=16).digest())
        note = self._ignored_notes.get(key)
        if note is not None:
            return note
        note = ignored_note(ordered)
        notes = self._ignored_notes
        if len(notes) < _MAX_IGNORED_SETS:
            notes[key] = note
            logger.warning("model %s: %s (warned once per set of columns)", model, note)
        elif len(notes) == _MAX_IGNORED_SETS:
            notes[key] = note
            logger.warning(
                "model %s: %d sets of ignored columns seen; further ones are not logged",
                model,
                _MAX_IGNORED_SETS,
            )
        return note

    def _protect(self, columns: Mapping[str, list[Any]]) -> Mapping[str, list[Any]]:
        if self._pii.isdisjoint(columns):
            return columns
        policy: Literal["hash", "drop"] = "hash" if self.config.pii_policy == "hash" else "drop"
        return PiiColumnsView(columns, self._pii, policy, self._pii_salt)

    def record(
        self,
        slot: VersionSlot,
        *,
        request_id: str,
        columns: Columns,
        result: np.ndarray,
        arrived: float,
        latency: float,
        shadow: bool = False,
        agreed: bool | None = None,
    ) -> PredictionRecord:
        """A prediction record for the log: the model's output (class probabilities for a
        classifier, whatever the client asked to be answered), and the columns the request
        sent beyond the signature as ``ids``."""
        inputs: Mapping[str, list[Any]] = (
            ColumnsView(slot.schema.names, columns.data, columns.flat)
            if self.config.log_inputs
            else {}
        )
        ids: Mapping[str, list[Any]] | None = columns.ignored
        if self._pii:
            inputs = self._protect(inputs)
            ids = self._protect(ids) if ids else ids
        return PredictionRecord(
            request_id=request_id,
            model=slot.name,
            version=slot.version,
            inputs=inputs,
            outputs=result.tolist(),
            latency_ms=latency * 1000.0,
            timestamp=dt.datetime.fromtimestamp(arrived, dt.UTC),
            shadow=shadow,
            agreed=agreed,
            deployment=self.config.deployment,
            ids=ids,
        )

    async def predict(
        self,
        slot: VersionSlot,
        *,
        columns: Columns,
        request_id: str,
        protocol: str,
        arrived: float,
        started: float,
        routed: bool,
    ) -> np.ndarray:
        """Predict through the version's batcher, then count, log and shadow."""
        result = await slot.batcher.submit(columns)
        latency = time.perf_counter() - started
        children = slot.children
        counter = children.get(protocol)
        if counter is None:
            metrics = self.metrics
            counter = children[protocol] = metrics.child(
                metrics.requests, slot.name, slot.version, protocol
            )
            children["latency"] = metrics.child(metrics.latency, slot.name, slot.version)
        counter.inc()
        children["latency"].observe(latency)
        recent = self.recent
        if recent is not None:
            recent.add(request_id, (slot.labels, columns.rows))
        if self.predictions is not None:
            await self.predictions.put(
                self.record(
                    slot,
                    request_id=request_id,
                    columns=columns,
                    result=result,
                    arrived=arrived,
                    latency=latency,
                )
            )
        if routed:
            entry = self.router.entry(slot.name)
            for shadow_version in entry.shadows:
                shadow_slot = entry.versions.get(shadow_version)
                if shadow_slot is None or shadow_slot is slot:
                    continue
                if len(self.shadow_tasks) >= self.config.max_shadow_inflight:
                    self.metrics.child(self.metrics.shadow_skipped, slot.name, shadow_version).inc()
                    continue
                task = asyncio.get_running_loop().create_task(
                    self.run_shadow(
                        slot,
                        shadow=shadow_slot,
                        columns=columns,
                        answer=result,
                        request_id=request_id,
                        arrived=arrived,
                    )
                )
                self.shadow_tasks.add(task)
                task.add_done_callback(self.shadow_tasks.discard)
        return result

    async def run_shadow(
        self,
        primary: VersionSlot,
        *,
        shadow: VersionSlot,
        columns: Columns,
        answer: np.ndarray,
        request_id: str,
        arrived: float,
    ) -> None:
        """Predict with a shadow version, compare with the answer given, log it."""
        started = time.perf_counter()
        try:
            result = await shadow.batcher.submit(columns)
        except Exception as exc:
            self.metrics.child(
                self.metrics.shadow, primary.name, primary.version, shadow.version, "error"
            ).inc()
            logger.warning("shadow %s version %s failed: %s", shadow.name, shadow.version, exc)
            return
        agreed = _agree(answer, result)
        self.metrics.child(
            self.metrics.shadow,
            primary.name,
            primary.version,
            shadow.version,
            "true" if agreed else "false",
        ).inc()
        if self.predictions is not None:
            latency = time.perf_counter() - started
            await self.predictions.put(
                self.record(
                    shadow,
                    request_id=request_id,
                    columns=columns,
                    result=result,
                    arrived=arrived,
                    latency=latency,
                    shadow=True,
                    agreed=agreed,
                )
            )

    # -- the inference hot path (raw ASGI, see InferenceRoutes) -------------------------------

    async def v2_infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        """``POST /v2/models/{name}[/versions/{version}]/infer``."""
        started = time.perf_counter()
        arrived = time.time()
        headers = _headers(scope)
        request_id = headers.get("x-request-id")
        label_version = version or ""
        try:
            if self.token_required:
                self.check_token(headers.get("authorization"), "predict")
            _check_request_id(request_id)
            header_length = headers.get("inference-header-content-length")
            content_type = media_type(headers.get("content-type"))
            if content_type not in _V2_CONTENT_TYPES and not (
                content_type == _BINARY and header_length is not None
            ):
                raise HTTPError(
                    415,
                    f"unsupported content type {headers.get('content-type')!r}; send "
                    "application/json, or application/octet-stream with "
                    "Inference-Header-Content-Length for binary tensor data",
                )
            body = await self.read_body(headers, receive)
            payload, binary = parse_v2(
                body, _int_header(header_length, "Inference-Header-Content-Length")
            )
            body_id = payload.get("id")
            if request_id is None:
                request_id = _check_request_id(body_id)
            if version is None:
                slot = self.router.entry(name).route(request_id)
            else:
                slot = self.router.slot(name, version)
            label_version = slot.version
            decoded = decode_v2(payload, slot.schema, binary)
            available = slot.outputs
            wanted = v2_outputs(
                decoded.outputs,
                available,
                available[:1],
                model=slot.name,
                binary_output=decoded.binary_output,
            )
            if request_id is None:
                request_id = self.new_request_id()
            result = await self.predict(
                slot,
                columns=decoded.columns,
                request_id=request_id,
                protocol="v2",
                arrived=arrived,
                started=started,
                routed=version is None,
            )
            labelled = slot.has_labels(result)
            content, head_length = encode_v2_response(
                model=slot.name,
                version=slot.version,
                request_id=body_id,
                tensors=[
                    (
                        out,
                        slot.class_labels(result)
                        if out != slot.output_name and labelled
                        else result,
                        binary_out,
                    )
                    for out, binary_out in wanted
                ],
            )
        except Exception as exc:
            status, content, extra = self.error_answer(
                _status_for(exc), name, label_version, request_id
            )
            await _send(send, status, content, _JSON_BYTES, extra)
            return
        out_headers = {"x-request-id": request_id}
        if head_length is not None:
            out_headers["inference-header-content-length"] = str(head_length)
            await _send(send, 200, content, b"application/octet-stream", out_headers)
        else:
            await _send(send, 200, content, _JSON_BYTES, out_headers)

    async def invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        """MLflow-style ``POST /invocations``.

        A classifier answers with class labels, or with its class probabilities when
        ``params.predict_method`` (or the ``predict_method`` query parameter) is
        ``predict_proba``; the prediction log keeps the probabilities either way. Columns
        beyond the signature are ignored with an ``x-opsloop-warning`` header (and one log
        line per set of columns) and logged as the record's ``ids``.
        """
        started = time.perf_counter()
        arrived = time.time()
        headers = _headers(scope)
        request_id = headers.get("x-request-id")
        given_id = request_id is not None
        query = scope.get("query_string", b"")
        params = {k: v[0] for k, v in parse_qs(query.decode()).items()} if query else {}
        name = params.get("model") or headers.get("x-opsloop-model")
        version = params.get("version")
        label_name, label_version = name or "", version or ""
        try:
            if self.token_required:
                self.check_token(headers.get("authorization"), "predict")
            _check_request_id(request_id)
            if media_type(headers.get("content-type")) != _JSON:
                raise HTTPError(
                    415,
                    f"unsupported content type {headers.get('content-type') or 'none'!r}; "
                    "send application/json",
                )
            payload = loads_json(await self.read_body(headers, receive))
            if name is None:
                names = self.router.names
                if len(names) != 1:
                    raise HTTPError(
                        400,
                        f"this server serves {names or 'no models'}; name one with ?model=NAME "
                        "or the x-opsloop-model header",
                        "model",
                    )
                name = label_name = names[0]
            if version is None:
                slot = self.router.entry(name).route(request_id if given_id else None)
            else:
                slot = self.router.slot(name, version)
            label_version = slot.version
            columns = decode_invocations(payload, slot.schema)
            method = predict_method(payload.get("params"), params.get("predict_method"))
            if method == "predict_proba" and len(slot.output_shape) != 2:
                raise _no_proba(slot)
            if request_id is None:
                request_id = self.new_request_id()
            result = await self.predict(
                slot,
                columns=columns,
                request_id=request_id,
                protocol="mlflow",
                arrived=arrived,
                started=started,
                routed=version is None,
            )
            if method == "predict_proba":
                if result.ndim != 2:
                    raise _no_proba(slot)
            elif slot.has_labels(result):
                # A classifier answers with its classes, as MLflow's scikit-learn flavor does.
                result = slot.class_labels(result)
            if result.dtype.kind in "biuf":
                content = orjson.dumps({"predictions": result}, option=_NUMPY)
            else:
                content = orjson.dumps({"predictions": result.tolist()}, default=str)
            out_headers = {"x-request-id": request_id}
            if columns.ignored:
                out_headers["x-opsloop-warning"] = self.ignored_warning(
                    slot.name, list(columns.ignored)
                )
        except Exception as exc:
            status, content, extra = self.error_answer(
                _status_for(exc), label_name, label_version, request_id, mlflow=True
            )
            await _send(send, status, content, _JSON_BYTES, extra)
            return
        await _send(send, 200, content, _JSON_BYTES, out_headers)


_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


class InferenceRoutes:
    """Serves the two inference routes as plain ASGI, in front of Starlette's routing.

    Prediction requests are the only hot path; skipping the router, the request/response
    wrappers and the exception middleware for them is measurably faster (see
    benchmarks/serving.py), while every other route keeps Starlette's conveniences.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/invocations":
                await self.state.invocations(scope, receive, send)
                return
            match = _INFER_PATH.fullmatch(path)
            if match is not None:
                await self.state.v2_infer(scope, receive, send, match[1], match[2])
                return
        await self.app(scope, receive, send)


def _no_proba(slot: VersionSlot) -> HTTPError:
    return HTTPError(
        400,
        f"params.predict_method: model '{slot.name}' version '{slot.version}' answers no class "
        "probabilities (it is no classifier with predict_proba); use predict",
        "predict_method",
    )


def _check_request_id(request_id: str | None) -> str | None:
    # It is echoed in a header and stored with every record: keep it to a sane size.
    if request_id is not None and len(request_id) > 256:
        raise HTTPError(400, "x-request-id: longer than 256 characters", "x-request-id")
    return request_id


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _int_header(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPError(400, f"header {name}: not an integer: {value!r}", name) from None


async def _send(
    send: Send, status: int, body: bytes, content_type: bytes, headers: dict[str, str]
) -> None:
    raw = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _agree(answer: np.ndarray, shadow: np.ndarray) -> bool:
    """Whether a shadow's output agrees with the answer: same class for probabilities,
    equal (or close, for floats) values otherwise."""
    if answer.shape != shadow.shape:
        return False
    if answer.ndim == 2 and answer.dtype.kind == "f":
        return bool(np.array_equal(answer.argmax(axis=1), shadow.argmax(axis=1)))
    if answer.dtype.kind == "f" and shadow.dtype.kind == "f":
        return bool(np.allclose(answer, shadow, rtol=1e-6, atol=1e-9, equal_nan=True))
    return bool(np.array_equal(answer, shadow))


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=_NUMPY), status, headers, _JSON)


def _status_for(exc: Exception) -> HTTPError:
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, InvalidRequestError):
        return HTTPError(400, exc.message, exc.field)
    if isinstance(exc, NotFoundError):
        return HTTPError(404, exc.message)
    if isinstance(exc, OpsloopError):
        return HTTPError(500, exc.message)
    logger.exception("unexpected error while answering a request")
    return HTTPError(500, f"internal error: {type(exc).__name__}: {exc}")


class _Endpoints:
    """The routes Starlette serves (all but inference, see :class:`InferenceRoutes`), over
    one :class:`ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/models/{name}", self.model_metadata, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}", self.model_metadata, methods=["GET"]),
            Route("/v2/models/{name}/ready", self.model_ready, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}/ready", self.model_ready, methods=["GET"]),
            Route("/ping", self.ready, methods=["GET"]),
            Route("/health", self.ready, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/v1/feedback", self.feedback, methods=["POST"]),
            Route("/v1/admin/models", self.admin_models, methods=["GET", "POST"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        state = self.state
        try:
            await state.startup()
        except Exception as exc:
            state.startup_error = exc
            raise
        try:
            yield
        finally:
            await state.shutdown()

    # -- health and metadata ------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ok = self.state.ready and bool(self.state.router.names)
        return _json({"ready": ok}, 200 if ok else 503)

    async def server_metadata(self, request: Request) -> Response:
        return _json(
            {"name": "opsloop", "version": self.state.version, "extensions": ["binary_tensor_data"]}
        )

    async def model_metadata(self, request: Request) -> Response:
        state = self.state
        if state.token_required:
            try:
                state.check_token(request.headers.get("authorization"), "predict")
            except HTTPError as exc:
                return state.error_response(exc, "", "", None)
        name = request.path_params["name"]
        version = request.path_params.get("version")
        try:
            if version is None:
                entry = state.router.entry(name)
                return _json(entry.primary.metadata(sorted(entry.versions)))
            return _json(state.router.slot(name, version).metadata([version]))
        except NotFoundError as exc:
            return _json({"error": exc.message}, 404)

    async def model_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        try:
            if version is None:
                self.state.router.entry(name)
            else:
                self.state.router.slot(name, version)
        except NotFoundError as exc:
            return _json({"name": name, "ready": False, "error": exc.message}, 404)
        ok = self.state.ready
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    # -- metrics, feedback, admin -------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        state = self.state
        for log in (state.predictions, state.feedback):
            if log is not None:
                state.metrics.child(state.metrics.log_queue, log.name).set(log.depth)
        return Response(state.metrics.render(), 200, None, CONTENT_TYPE_LATEST)

    async def feedback(self, request: Request) -> Response:
        state = self.state
        try:
            if state.feedback_token_required:
                state.check_token(request.headers.get("authorization"), "feedback")
            body = await state.read_body(request.headers, request.receive)
            client = request.client.host if request.client else ""
            accepted = await state.accept_feedback(body, client)
        except Exception as exc:
            return state.error_response(_status_for(exc), "", "", None)
        return _json({"accepted": accepted})

    def _authorize_admin(self, request: Request) -> None:
        if self.state.guard_admin:
            self.state.check_token(request.headers.get("authorization"), "admin")
            return
        host = request.client.host if request.client else ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise HTTPError(403, "admin endpoints need an admin token when not on loopback")

    async def admin_models(self, request: Request) -> Response:
        state = self.state
        try:
            self._authorize_admin(request)
            if request.method == "GET":
                return _json({"models": state.router.describe()})
            payload = loads_json(await state.read_body(request.headers, request.receive))
            if not isinstance(payload, dict):
                raise HTTPError(400, "expected a JSON object with an 'action'", "action")
            result = await _admin_action(state, payload)
        except Exception as exc:
            return state.error_response(_status_for(exc), "", "", None)
        return _json({"ok": True, **result, "models": state.router.describe()})


def create_app(config: ServerConfig) -> Starlette:
    """Build the server's ASGI app.

    Models are loaded and warmed, and logs started, in the app's lifespan, so run it under a
    server that drives the lifespan (uvicorn does). The state is on ``app.state.server``
    (:class:`ServerState`) and the router on ``app.state.router`` for in-process changes.
    """
    state = ServerState(config)
    endpoints = _Endpoints(state)
    app = Starlette(
        routes=endpoints.routes(),
        lifespan=endpoints.lifespan,
        middleware=[Middleware(InferenceRoutes, state=state)],
    )
    app.state.server = state
    app.state.router = state.router
    return app


async def _admin_action(state: ServerState, payload: dict[str, Any]) -> dict[str, Any]:
    action = payload.get("action")
    router = state.router
    if action in ("load", "swap"):
        uri = payload.get("uri")
        if not isinstance(uri, str):
            raise HTTPError(400, f"{action}: 'uri' (a model URI) is required", "uri")
        loader = state.config.loader
        if loader is None:
            raise HTTPError(501, "this server has no model loader configured", "uri")
        try:
            model = await asyncio.to_thread(loader, uri)
        except OpsloopError as exc:
            raise HTTPError(422, f"loading {uri!r} failed: {exc.message}", "uri") from exc
        except Exception as exc:
            raise HTTPError(
                422, f"loading {uri!r} failed: {type(exc).__name__}: {exc}", "uri"
            ) from exc
        try:
            if action == "swap":
                slot = await router.swap(model)
            else:
                traffic = payload.get("traffic")
                if traffic is not None and not isinstance(traffic, dict):
                    raise HTTPError(400, "load: 'traffic' must map versions to weights", "traffic")
                slot = await router.load(model, traffic=traffic)
        except ServingError as exc:
            raise HTTPError(422, exc.message, "uri") from exc
        return {"model": slot.name, "version": slot.version}
    if action == "unload":
        name, version = payload.get("model"), payload.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise HTTPError(400, "unload: 'model' and 'version' (strings) are required", "model")
        try:
            await router.unload(name, version)
        except ServingError as exc:
            raise HTTPError(409, exc.message, "version") from exc
        return {"model": name, "version": version}
    if action == "set_traffic":
        name, traffic = payload.get("model"), payload.get("traffic")
        shadow = payload.get("shadow")
        if not isinstance(name, str) or not isinstance(traffic, dict):
            raise HTTPError(
                400,
                "set_traffic: 'model' and 'traffic' ({version: weight}) are required",
                "traffic",
            )
        if not all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in traffic.values()
        ):
            raise HTTPError(400, "set_traffic: weights must be numbers", "traffic")
        if shadow is not None and not (
            isinstance(shadow, list) and all(isinstance(v, str) for v in shadow)
        ):
            raise HTTPError(400, "set_traffic: 'shadow' must be a list of versions", "shadow")
        try:
            await router.set_traffic(name, traffic, shadow)
        except NotFoundError:
            raise
        except ServingError as exc:
            raise HTTPError(400, exc.message, "traffic") from exc
        return {"model": name}
    raise HTTPError(
        400,
        f"unknown action {action!r}; use load, swap, unload or set_traffic",
        "action",
    )
