"""Who the caller is: ``GET /api/v1/whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from opsloop.api import deps
from opsloop.api.problems import problems
from opsloop.secops.access import ROLES, Identity

__all__ = ["GrantOut", "WhoAmI", "router"]

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


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="The caller's identity, roles and grants",
    responses=problems(),
)
def whoami(me: Annotated[Identity, Depends(deps.identity)]) -> WhoAmI:
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
