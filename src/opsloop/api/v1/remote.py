"""Remote mode's server side: the store RPC and the blobs of the artifact store.

A client with ``OPSLOOP_SERVER`` set (see :mod:`opsloop.store.remote` and
:mod:`opsloop.artifacts.remote`) keeps calling the same store and artifact-store methods; they
arrive here:

* ``POST /api/v1/store/{repository}/{method}`` runs one method of the project's store
  repositories, if :data:`~opsloop.store.remote.REMOTE_METHODS` lists it (anything else is a
  404), after the caller's identity is authorised for the action the list names. The body is
  a JSON object of the method's arguments, validated against the method's own type hints; the
  answer is its result as JSON. Writes are recorded for the caller (who, from which address).
* ``PUT /api/v1/blobs/{digest}`` stores a blob whose bytes must hash to ``digest``;
  ``GET`` and ``HEAD`` read it back.

Errors are problem documents (RFC 9457) that also name the error's class, message and hint,
so that the client raises the same error a local store would have raised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from opsloop.api import deps
from opsloop.api.problems import problems
from opsloop.api.v1._common import BodyTooLargeError, read_body
from opsloop.artifacts.base import DIGEST_PREFIX, check_digest
from opsloop.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigError,
    DigestMismatchError,
    NotFoundError,
    OpsloopError,
    PermissionDeniedError,
    StoreError,
    is_data_error,
)
from opsloop.redact import redact
from opsloop.registry.admission import require_alias_admitted
from opsloop.registry.signing import attest_stored_version, project_trusted_keys
from opsloop.secops.access import Action, Identity, authorize
from opsloop.secops.policy import alias_action
from opsloop.spec.schema import AccessSection
from opsloop.store.acting import acting
from opsloop.store.remote import REMOTE_EVENT_KINDS, RemoteMethod, remote_method

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store

__all__ = ["MAX_BLOB_BYTES", "MAX_BODY_BYTES", "RemoteProblem", "router"]

log = logging.getLogger("opsloop.api")

router = APIRouter(tags=["remote mode"], dependencies=[Depends(deps.bearer)])

MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest store call accepted (a batch of a million metric points is about 40 MB)."""

MAX_BLOB_BYTES = 8 * 1024**3
"""The largest blob accepted (it is streamed to disk, never held in memory)."""


class RemoteProblem(BaseModel):
    """A problem document (RFC 9457) naming the error's class, so the client raises it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    error: str
    hint: str | None = None
    data_error: bool = False


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/RemoteProblem"}
    return {
        code: {"model": RemoteProblem, "content": {"application/problem+json": {"schema": schema}}}
        for code in codes
    }


_STORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The method's result, as JSON.", "content": {"application/json": {}}},
    **_problems(400, 401, 403, 404, 409, 413, 422, 500, 503),
}


def _status(exc: OpsloopError) -> int:
    for cls, status in (
        (NotFoundError, 404),
        (AlreadyExistsError, 409),
        (AuthenticationError, 401),
        (PermissionDeniedError, 403),
    ):
        if isinstance(exc, cls):
            return status
    if is_data_error(exc):
        return 422
    if isinstance(exc, StoreError):
        return 503
    return 400


def problem(exc: OpsloopError, status: int | None = None) -> JSONResponse:
    """The problem document of an error: its class, message and hint, and whether retrying
    the same call can ever help (``data_error``)."""
    code = status or _status(exc)
    headers = {"www-authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(
        {
            "type": "about:blank",
            "title": type(exc).__name__,
            "status": code,
            "detail": exc.message,
            "error": type(exc).__name__,
            "hint": exc.hint,
            "data_error": is_data_error(exc),
        },
        status_code=code,
        media_type="application/problem+json",
        headers=headers,
    )


def _source(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _invalid(found: RemoteMethod, exc: ValidationError) -> StoreError:
    shown = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "the body"
        shown.append(f"{where}: {error['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    refused = StoreError(
        f"the server refused the arguments of {found.repository}.{found.name}: "
        + "; ".join(shown)
        + more
    )
    # Sent again, the same arguments are refused again.
    refused.__cause__ = TypeError(refused.message)
    return refused


def _check_access(
    identity: Identity, policy: AccessSection, found: RemoteMethod, arguments: dict[str, Any]
) -> None:
    """Authorise the call for the action :data:`~opsloop.store.remote.REMOTE_METHODS` names,
    on the model or deployment its arguments name."""
    if found.repository == "models":
        model = arguments.get("model_name", arguments.get("name"))
        resource_type: Any = "model"
        resource = model if isinstance(model, str) else None
    elif found.repository == "deployments":
        name = arguments.get("name")
        resource_type, resource = "deployment", name if isinstance(name, str) else None
    else:
        resource_type, resource = None, None
    actions: list[Action] = []
    if found.action == "alias":
        actions.append(_alias_action(policy, arguments.get("alias")))
    else:
        actions.append(found.action)  # type: ignore[arg-type]  # checked by the tests
    if (found.repository, found.name) == ("models", "create_version") and arguments.get("alias"):
        actions.append(_alias_action(policy, arguments.get("alias")))
    for action in actions:
        authorize(identity, action, resource_type=resource_type, resource=resource)


#: What a version records when it is registered, and the admission policy reads.
_ADMISSION_DETAILS = frozenset({"package", "signature", "scan", "gates", "gates_passed"})


def _check_call(
    project: Project, store: Store, found: RemoteMethod, arguments: dict[str, Any]
) -> None:
    """What the server checks itself rather than take a client's word for it.

    The admission policy is enforced here on every alias move (a client checks it too, but
    need not); a version's admission facts cannot be rewritten afterwards; and a client may
    append no audit event but the refusals it records.

    Raises:
        SecurityError: The admission policy refuses the version (the refusal is recorded).
        PermissionDeniedError: The call would rewrite admission facts or forge an event.
    """
    call = (found.repository, found.name)
    if call == ("events", "emit") and arguments.get("kind") not in REMOTE_EVENT_KINDS:
        raise PermissionDeniedError(
            f"events of kind {str(arguments.get('kind'))[:100]!r} are written by the store "
            "calls they record: a client may not append them",
            hint=f"a client may emit: {', '.join(sorted(REMOTE_EVENT_KINDS))}",
        )
    if call == ("models", "update_version"):
        touched = sorted(_ADMISSION_DETAILS & set(arguments.get("details") or {}))
        if touched:
            raise PermissionDeniedError(
                f"details {', '.join(touched)} of a model version are recorded when it is "
                "registered; they cannot be changed afterwards",
                hint="register a new version instead",
            )
    if call == ("models", "set_alias"):
        model, alias = arguments["model_name"], arguments["alias"]
        info = store.models.get_version(model, arguments["version"])
        require_alias_admitted(store, model, alias, info.version, info.details, project=project)
    if call == ("models", "create_version"):
        arguments["details"] = _verified_details(project, arguments)
        if arguments.get("alias"):
            model, alias = arguments["model_name"], arguments["alias"]
            details = arguments["details"]
            require_alias_admitted(store, model, alias, None, details, project=project)


def _verified_details(project: Project, arguments: dict[str, Any]) -> dict[str, Any]:
    """A remote registration's details with the admission facts established by the server:
    it scans the uploaded files itself and signs them with the project's key, whatever the
    client claimed, so a client cannot register a version as scanned or signed that is not.
    Clients verify those signatures with the keys ``GET /api/v1/keys`` publishes.
    """
    details = dict(arguments.get("details") or {})
    return {**details, **attest_stored_version(project, arguments["artifact_digest"])}


def _alias_action(policy: AccessSection, alias: object) -> Action:
    return alias_action(alias, policy) if isinstance(alias, str) else "alias.move"


@router.post(
    "/store/{repository}/{method}",
    summary="Call a store method (remote mode)",
    description="Runs one listed method of the project's store repositories for the caller; "
    "the body is a JSON object of its arguments, the answer its result.",
    responses=_STORE_RESPONSES,
)
async def store_call(repository: str, method: str, request: Request) -> Response:
    """One store method, for the caller its token names."""
    try:
        # Who asks comes first: a caller without a valid token learns nothing, not even
        # which methods exist.
        identity = deps.identity(request)
        found = remote_method(repository, method)
        if found is None:
            raise NotFoundError(
                f"the store method {repository[:64]!r}.{method[:64]!r} is not served remotely",
                hint="remote mode serves the methods listed in opsloop.store.remote",
            )
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLargeError as exc:
            too_large = StoreError(str(exc), hint="send it in smaller batches")
            # The same body is refused again: a metric buffer splits such a batch.
            too_large.__cause__ = ValueError(too_large.message)
            return problem(too_large, 413)
        try:
            arguments = found.arguments.validate_json(body)
        except ValidationError as exc:
            return problem(_invalid(found, exc), 422)
        _check_access(identity, deps.access_policy(request), found, arguments)
        project = deps.project(request)
        store = project.store
        source = _source(request)

        def call() -> bytes:
            with acting(identity.name, source=source):
                _check_call(project, store, found, arguments)
                result = getattr(getattr(store, repository), method)(**arguments)
            return found.dump_result(result)

        content = await run_in_threadpool(call)
    except OpsloopError as exc:
        return problem(exc)
    except Exception as exc:
        if is_data_error(exc):
            refused = StoreError(f"{repository}.{method}: {type(exc).__name__}: {redact(str(exc))}")
            refused.__cause__ = exc
            return problem(refused, 422)
        log.exception("store call %s.%s failed", repository, method)
        return problem(
            StoreError(f"{repository}.{method} failed on the server ({type(exc).__name__})"), 500
        )
    return Response(content, media_type="application/json")


# -- blobs -------------------------------------------------------------------------------


#: A blob's address in a path: ``sha256:<64 lowercase hex>``.
Digest = Annotated[
    str, PathParam(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<64 hex digits>")
]


def _blob_digest(digest: str) -> str:
    check_digest(digest)
    return digest


class PublicKeyOut(BaseModel):
    """A public key a client verifies signatures with."""

    key_id: str
    pem: str
    source: str


class PublicKeysOut(BaseModel):
    """The keys the server signs registered versions with, and the project trusts."""

    keys: list[PublicKeyOut]


@router.get(
    "/keys",
    response_model=PublicKeysOut,
    responses=problems(),
    summary="The public keys registered versions are signed with",
)
def public_keys(request: Request) -> PublicKeysOut:
    """The project's signing keys (current and retired) and its ``security.trusted_keys``:
    what a client in remote mode verifies a version's signature with before loading it."""
    authorize(deps.identity(request), "read")
    return PublicKeysOut(
        keys=[
            PublicKeyOut(key_id=k.key_id, pem=k.pem.decode(), source=k.source)
            for k in project_trusted_keys(deps.project(request))
        ]
    )


@router.head(
    "/blobs/{digest}",
    summary="Whether a blob is stored, and its size",
    # A HEAD answer has no body: its statuses are declared without content.
    responses={
        400: {"description": "Not a digest."},
        401: {"description": "No valid token."},
        403: {"description": "The caller may not read."},
        404: {"description": "No such blob."},
        422: {"description": "The request does not validate."},
    },
)
def blob_head(digest: Digest, request: Request) -> Response:
    """200 with the blob's size as ``Content-Length``, or 404."""
    try:
        authorize(deps.identity(request), "read")
        artifacts = deps.project(request).artifacts
        if not artifacts.exists(_blob_digest(digest)):
            return Response(status_code=404)
        size = artifacts.size(digest)
    except OpsloopError as exc:
        return Response(status_code=_status(exc))
    return Response(headers={"content-length": str(size)})


@router.get(
    "/blobs/{digest}",
    summary="Read a blob",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **_problems(400, 401, 403, 404),
        422: problems()[422],
    },
)
async def blob_get(digest: Digest, request: Request) -> Response:
    """The blob's bytes, checked against its digest before they are sent."""
    folder = Path(tempfile.mkdtemp(prefix="opsloop-blob-"))
    try:
        authorize(deps.identity(request), "read")
        artifacts = deps.project(request).artifacts
        target = folder / "blob"
        await run_in_threadpool(artifacts.get_file, _blob_digest(digest), target)
    except OpsloopError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return problem(exc)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type="application/octet-stream",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.put(
    "/blobs/{digest}",
    status_code=201,
    summary="Store a blob",
    responses={
        201: {"content": {"application/json": {}}},
        **_problems(400, 401, 403, 413),
        422: problems()[422],
    },
)
async def blob_put(digest: Digest, request: Request) -> Response:
    """Store the body under ``digest``, refused unless its bytes hash to it."""
    try:
        identity = deps.identity(request)
        authorize(identity, "log")
        _blob_digest(digest)
        artifacts = deps.project(request).artifacts
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BLOB_BYTES:
            raise BodyTooLargeError(MAX_BLOB_BYTES)
        fd, name = tempfile.mkstemp(prefix="opsloop-upload-")
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BLOB_BYTES:
                        raise BodyTooLargeError(MAX_BLOB_BYTES)
                    h.update(chunk)
                    out.write(chunk)
            actual = DIGEST_PREFIX + h.hexdigest()
            if actual != digest:
                raise DigestMismatchError(
                    f"the uploaded bytes hash to {actual}, not to {digest}: nothing was stored"
                )
            with acting(identity.name, source=_source(request)):
                await run_in_threadpool(artifacts.put_file, Path(name))
        finally:
            os.unlink(name)
    except BodyTooLargeError as exc:
        return problem(ConfigError(str(exc)), 413)
    except OpsloopError as exc:
        return problem(exc)
    return JSONResponse({"digest": digest, "size": size}, status_code=201)
