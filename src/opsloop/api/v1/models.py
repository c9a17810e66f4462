"""The model registry: models, versions, their scan and signature status, and aliases
(moved and removed on behalf of the caller)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, PolicyDep, StoreDep, writing
from opsloop.lifecycle.aliases import move_alias
from opsloop.secops import scan_status
from opsloop.secops.access import authorize
from opsloop.secops.policy import alias_action
from opsloop.store.types import ModelVersionInfo, RegisteredModelInfo

__all__ = ["router"]

router = APIRouter(tags=["models"])

ModelName = Annotated[str, Path(description="The registered model's name.")]
VersionNumber = Annotated[int, Path(description="The version number.", ge=1)]
AliasName = Annotated[str, Path(description="The alias, e.g. champion.")]


class SecurityStatus(BaseModel):
    """What was checked of a version before it may be served."""

    scan: str = Field(description="passed, failed or not scanned.")
    scan_details: dict[str, Any] = Field(description="The scan's record: scanner, findings …")
    signed: bool = Field(description="Whether the version's files were signed when registered.")
    signature: dict[str, Any] = Field(description="The signature's record: format, key id …")
    bom: str = Field(
        description="How to get the version's CycloneDX ML-BOM (built on demand from the "
        "registry records)."
    )


class AliasMoveRequest(BaseModel):
    """Where to point an alias."""

    version: int = Field(ge=1, description="The version the alias points at afterwards.")
    allow_rollback: bool = Field(
        default=False, description="Allow moving the alias back to an older version."
    )


class AliasMoveOut(BaseModel):
    """An alias move."""

    model: str
    alias: str
    version: int
    previous: int | None = Field(description="The version the alias pointed at before.")
    moved: bool
    rollback: bool = Field(description="Whether the alias went back to an older version.")


@router.get(
    "/models",
    response_model=Page[RegisteredModelInfo],
    responses=problems(400),
    summary="List registered models",
)
def list_models(
    request: Request,
    caller: Caller,
    store: StoreDep,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[RegisteredModelInfo]:
    """Registered models by name, with their latest version and aliases."""
    authorize(caller, "read")
    items, next_cursor = page(
        request,
        store.models.list(),
        key=lambda m: [sort_value(m.name)],
        scope=scope_of("models"),
        cursor=cursor,
        limit=limit,
    )
    return Page[RegisteredModelInfo](items=items, next_cursor=next_cursor)


@router.get(
    "/models/{name}",
    response_model=RegisteredModelInfo,
    responses=problems(404),
    summary="A registered model",
)
def get_model(caller: Caller, store: StoreDep, name: ModelName) -> RegisteredModelInfo:
    """One registered model."""
    authorize(caller, "read", resource_type="model", resource=name)
    return store.models.get(name)


@router.get(
    "/models/{name}/versions",
    response_model=Page[ModelVersionInfo],
    responses=problems(400, 404),
    summary="A model's versions",
)
def list_versions(
    request: Request,
    caller: Caller,
    store: StoreDep,
    name: ModelName,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[ModelVersionInfo]:
    """The model's versions, newest first."""
    authorize(caller, "read", resource_type="model", resource=name)
    store.models.get(name)
    items, next_cursor = page(
        request,
        store.models.list_versions(name),
        key=lambda v: [sort_value(v.version)],
        scope=scope_of("versions", model=name),
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[ModelVersionInfo](items=items, next_cursor=next_cursor)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelVersionInfo,
    responses=problems(404),
    summary="A model version",
)
def get_version(
    caller: Caller, store: StoreDep, name: ModelName, version: VersionNumber
) -> ModelVersionInfo:
    """One version, with its run, data set, aliases and recorded details."""
    authorize(caller, "read", resource_type="model", resource=name)
    return store.models.get_version(name, version)


@router.get(
    "/models/{name}/versions/{version}/security",
    response_model=SecurityStatus,
    responses=problems(404),
    summary="A version's scan and signature status",
)
def get_security(
    caller: Caller, store: StoreDep, name: ModelName, version: VersionNumber
) -> SecurityStatus:
    """Whether the version was scanned (and passed) and signed when registered."""
    authorize(caller, "read", resource_type="model", resource=name)
    info = store.models.get_version(name, version)
    scan = info.details.get("scan")
    signature = info.details.get("signature")
    return SecurityStatus(
        scan=scan_status(info.details),
        scan_details=scan if isinstance(scan, dict) else {},
        signed=isinstance(signature, dict) and bool(signature.get("bundle_digest")),
        signature=signature if isinstance(signature, dict) else {},
        bom=f"opsloop bom models:/{name}/{version}",
    )


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=AliasMoveOut,
    responses=problems(400, 404, 409),
    summary="Point an alias at a version",
)
def set_alias(
    request: Request,
    caller: Caller,
    store: StoreDep,
    policy: PolicyDep,
    name: ModelName,
    alias: AliasName,
    body: Annotated[AliasMoveRequest, Body()],
) -> AliasMoveOut:
    """Move an alias; moving it back to an older version is a rollback and needs
    ``allow_rollback`` (else 409)."""
    authorize(caller, alias_action(alias, policy), resource_type="model", resource=name)
    with writing(request, caller):
        move = move_alias(store, name, alias, body.version, allow_rollback=body.allow_rollback)
    return AliasMoveOut(
        model=move.model,
        alias=move.alias,
        version=move.version,
        previous=move.previous,
        moved=move.moved,
        rollback=move.rollback,
    )


@router.delete(
    "/models/{name}/aliases/{alias}",
    status_code=204,
    response_class=Response,
    responses=problems(404),
    summary="Remove an alias",
)
def delete_alias(
    request: Request,
    caller: Caller,
    store: StoreDep,
    policy: PolicyDep,
    name: ModelName,
    alias: AliasName,
) -> None:
    """Remove an alias from a model."""
    authorize(caller, alias_action(alias, policy), resource_type="model", resource=name)
    with writing(request, caller):
        store.models.delete_alias(name, alias)
