"""Who the caller is: ``GET /api/v1/whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from opsloop.api import deps
from opsloop.errors import AuthenticationError
from opsloop.secops.access import ROLES, Identity

__all__ = ["GrantOut", "WhoAmI", "caller", "router"]

router = APIRouter(tags=["access"])


class GrantOut(BaseModel):
    """A role held on one model or one deployment."""

    role: str
    resource_type: str
    resource: str


class WhoAmI(BaseModel):
    """The caller as the server knows it."""

    name: str
    kind: str
    roles: list[str]
    grants: list[GrantOut]


def caller(request: Request) -> Identity:
    """The caller's identity; 401 with ``WWW-Authenticate: Bearer`` without a valid token."""
    try:
        return deps.identity(request)
    except AuthenticationError as exc:
        raise HTTPException(
            status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None


@router.get("/whoami", response_model=WhoAmI, summary="The caller's identity, roles and grants")
def whoami(me: Annotated[Identity, Depends(caller)]) -> WhoAmI:
    """Name, kind (``user``, ``service`` or ``local``), roles on everything (least first) and
    roles on single models or deployments."""
    return WhoAmI(
        name=me.name,
        kind=me.kind,
        roles=[r for r in ROLES if r in me.roles],
        grants=[
            GrantOut(role=g.role, resource_type=g.resource_type, resource=g.resource)
            for g in me.grants
        ],
    )
