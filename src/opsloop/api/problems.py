"""Error bodies of the API: RFC 9457 problem details (``application/problem+json``).

Every error answers with ``type``, ``title``, ``status``, ``detail`` and ``instance`` (the
request's path), and ``hint`` (the next step, as the CLI prints it) when opsloop has one.

How opsloop's errors map to statuses:

    NotFoundError                               404
    AlreadyExistsError                          409
    AuthenticationError                         401 (with ``WWW-Authenticate: Bearer``)
    PermissionDeniedError                       403
    WebhookPayloadError                         400
    RegistryError (RollbackError …), GitOpsError,
    AIOpsError, other SecurityError             409: refused in the present state of the object
                                                (an alias moving back unasked, a document with
                                                uncommitted changes, nothing to approve …)
    ConfigError (SpecError …), DataError,
    TrackingError, MonitorError, ArtifactError  422: the request's content cannot be used
    a malformed request (validation)            422
    a forged or foreign cursor                  400 (an HTTPException raised here)
    StoreError                                  503
    anything else                               500, without internals (logged on the server)

Messages go through :func:`opsloop.redact.redact`, so a URL's credentials never reach a body.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloop import errors
from opsloop.redact import redact

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "install_problem_handlers",
    "problem_response",
    "problems",
    "status_of",
]

logger = logging.getLogger("opsloop.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://opsloop.dev/problems/"


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str = Field(description="The request path the problem occurred on.")
    hint: str | None = Field(default=None, description="What to do next, when known.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid field of a request that failed validation."
    )


# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[errors.OpsloopError], int], ...] = (
    (errors.NotFoundError, 404),
    (errors.AlreadyExistsError, 409),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.WebhookPayloadError, 400),
    (errors.RegistryError, 409),
    (errors.GitOpsError, 409),
    (errors.AIOpsError, 409),
    (errors.SecurityError, 409),
    (errors.ConfigError, 422),
    (errors.DataError, 422),
    (errors.TrackingError, 422),
    (errors.MonitorError, 422),
    (errors.ArtifactError, 422),
    (errors.StoreError, 503),
)


def status_of(exc: errors.OpsloopError) -> int:
    """The HTTP status an opsloop error answers with."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _kind(name: str) -> str:
    """``PermissionDeniedError`` → ``permission-denied``."""
    base = name.removesuffix("Error") or name
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(base))


def problem_response(
    request: Request,
    status: int,
    kind: str,
    detail: str,
    *,
    hint: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response (detail and hint redacted)."""
    body = Problem(
        type=TYPE_BASE + kind,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=redact(detail),
        instance=request.url.path,
        hint=redact(hint) if hint else None,
        **(extra or {}),
    )
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def _opsloop_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.OpsloopError)
    status = status_of(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, redact(str(exc)))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    detail = str(exc) if status < 500 or status == 503 else "the server failed to answer"
    if status == 503:
        detail = "the metadata store is unavailable; try again"
    return problem_response(
        request,
        status,
        _kind(type(exc).__name__),
        detail,
        hint=exc.hint if status < 500 else None,
        headers=headers,
    )


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = [
        {"field": _where(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()
    ]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in found) or "invalid request"
    return problem_response(
        request, 422, "invalid-request", detail, extra={"errors": redact_errors(found)}
    )


def redact_errors(found: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Validation errors with their messages redacted."""
    return [{k: redact(v) for k, v in e.items()} for e in found]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "http-error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(
        request, exc.status_code, kind, detail, headers=getattr(exc, "headers", None)
    )


class _Unexpected:
    """Answers an exception no handler took with a 500 problem, without internals.

    (Starlette's own last-resort handler answers and then raises again, which can cut the
    connection before the client has read the answer.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise
            request = Request(scope)
            # The traceback stays in the server's log; the caller learns only that it failed.
            logger.exception("%s %s failed", request.method, request.url.path)
            response = problem_response(request, 500, "internal", "the server failed to answer")
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem+json body."""
    app.add_exception_handler(errors.OpsloopError, _opsloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(_Unexpected)


_DESCRIPTIONS = {
    400: "The request is malformed: a body that is not JSON, a forged or foreign cursor, a "
    "webhook payload that is not Alertmanager's.",
    413: "The request body is too large.",
    401: "No valid bearer token.",
    403: "The caller's roles do not allow the action.",
    404: "The object does not exist.",
    409: "Refused in the object's present state.",
    422: "The request's content cannot be used.",
    500: "The server failed.",
    503: "The metadata store is unavailable.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these problem statuses (401, 403, 422 and 500 are
    always included: every route authenticates, authorizes and validates)."""
    wanted = sorted({401, 403, 422, 500, 503, *statuses})
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in wanted
    }
