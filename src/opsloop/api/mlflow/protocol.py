"""MLflow's wire protocol: its error format, how a request's fields arrive, and the routes.

MLflow's client sends a JSON body with POST, PATCH and DELETE and the same fields as query
parameters with GET; it reads an error as ``{"error_code": ..., "message": ...}`` with the
HTTP status MLflow's own server gives that code. Every route of this package uses
:class:`MlflowRoute`, which turns opsloop's errors into that shape, so MLflow's client raises
an ``MlflowException`` carrying the right code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from opsloop.api import deps
from opsloop.errors import (
    AlreadyExistsError,
    ArtifactError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    OpsloopError,
    PermissionDeniedError,
    RegistryError,
    StoreError,
    TrackingError,
)
from opsloop.secops.access import Identity

__all__ = [
    "MAX_RESULTS",
    "Call",
    "MlflowError",
    "MlflowRoute",
    "as_list",
    "body",
    "call",
    "ms",
    "opt_str",
    "page",
    "req_str",
    "to_float",
    "to_int",
]


class MlflowError(Exception):
    """An error answered with MLflow's ``error_code`` as is (a malformed request)."""

    def __init__(
        self, message: str, code: str = "INVALID_PARAMETER_VALUE", status: int = 400
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


# The most specific class first: the first match gives the code.
_CODES: tuple[tuple[type[OpsloopError], str, int], ...] = (
    (NotFoundError, "RESOURCE_DOES_NOT_EXIST", 404),
    (AlreadyExistsError, "RESOURCE_ALREADY_EXISTS", 400),
    (AuthenticationError, "UNAUTHENTICATED", 401),
    (PermissionDeniedError, "PERMISSION_DENIED", 403),
    (StoreError, "TEMPORARILY_UNAVAILABLE", 503),
    (TrackingError, "INVALID_PARAMETER_VALUE", 400),
    (RegistryError, "INVALID_PARAMETER_VALUE", 400),
    (ConfigError, "INVALID_PARAMETER_VALUE", 400),
    (ArtifactError, "INTERNAL_ERROR", 500),
)


def error_response(exc: Exception) -> JSONResponse:
    """MLflow's error body and status for ``exc``."""
    if isinstance(exc, MlflowError):
        return JSONResponse({"error_code": exc.code, "message": str(exc)}, exc.status)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)}, 400)
    assert isinstance(exc, OpsloopError)
    for cls, code, status in _CODES:
        if isinstance(exc, cls):
            return JSONResponse({"error_code": code, "message": str(exc)}, status)
    return JSONResponse({"error_code": "INTERNAL_ERROR", "message": str(exc)}, 500)


class MlflowRoute(APIRoute):
    """A route whose errors reach the client in MLflow's format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped so that opsloop's errors answer as MLflow's."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except (OpsloopError, MlflowError, RequestValidationError) as exc:
                return error_response(exc)

        return answer


async def body(request: Request) -> dict[str, Any]:
    """The request's fields: its JSON body, and its query parameters (all of them with GET)."""
    fields: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        fields[key] = values if len(values) > 1 else values[0]
    if request.method != "GET":
        raw = await request.body()
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise MlflowError(
                    f"the request body is not JSON: {exc}", "MALFORMED_REQUEST"
                ) from exc
            if not isinstance(parsed, dict):
                raise MlflowError("the request body must be a JSON object", "MALFORMED_REQUEST")
            fields.update(parsed)
    return fields


@dataclass(frozen=True)
class Call:
    """One request: its fields, who sent it and from where."""

    fields: dict[str, Any]
    identity: Identity
    source: str | None


async def call(
    request: Request,
    fields: dict[str, Any] = Depends(body),  # noqa: B008 - FastAPI's dependency idiom
    identity: Identity = Depends(deps.identity),  # noqa: B008
) -> Call:
    """The fields of a request with the caller (authenticated before any handler runs)."""
    client = request.client
    return Call(fields, identity, f"mlflow:{client.host}" if client else "mlflow")


def req_str(fields: dict[str, Any], name: str, *aliases: str) -> str:
    """A required string field (MLflow's error when it is missing or empty)."""
    for key in (name, *aliases):
        value = fields.get(key)
        if value not in (None, ""):
            return str(value)
    raise MlflowError(f"Missing value for required parameter '{name}'.")


def opt_str(fields: dict[str, Any], name: str, *aliases: str) -> str | None:
    """An optional string field; None when absent or empty."""
    for key in (name, *aliases):
        value = fields.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def to_float(value: Any, what: str) -> float:
    """A double as protobuf's JSON writes it: a number, or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(value, bool):
        raise MlflowError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise MlflowError(f"{what} must be a number, got {value!r}")


def to_int(value: Any, what: str, default: int = 0) -> int:
    """An int64 as protobuf's JSON writes it: a number or a decimal string."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise MlflowError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise MlflowError(f"{what} must be an integer, got {value!r}")


def ms(when: datetime | None) -> int | None:
    """Epoch milliseconds of a stored (UTC) time."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


MAX_RESULTS = 50_000


def as_list(value: Any) -> list[str]:
    """A repeated field: a list, or one value sent alone (as a GET query sends it)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def page(rows: list[Any], fields: dict[str, Any], name: str) -> dict[str, Any]:
    """One page of ``rows``: the page token is the offset of the next page."""
    start = to_int(fields.get("page_token"), "page_token", 0)
    size = to_int(fields.get("max_results"), "max_results", 1000) or 1000
    if size > MAX_RESULTS:
        raise MlflowError(f"max_results must be at most {MAX_RESULTS}, got {size}")
    out: dict[str, Any] = {name: rows[start : start + size]}
    if start + size < len(rows):
        out["next_page_token"] = str(start + size)
    return out
