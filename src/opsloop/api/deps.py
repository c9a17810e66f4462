"""What every handler depends on: the project, its store, and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsloop.secops import policy
from opsloop.secops.access import Identity, local_identity
from opsloop.spec.schema import AccessSection

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store

__all__ = [
    "Authenticator",
    "access_policy",
    "bearer",
    "client_source",
    "identity",
    "local_authenticator",
    "project",
    "store",
]

#: Turns a bearer token (None when the request sent none) into the caller's identity, or
#: raises ``AuthenticationError``.
Authenticator = Callable[[str | None], Identity]

#: The bearer scheme, declared in the OpenAPI document; a request without a token gets None
#: here and the authenticator decides.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="An opsloop token.")


def local_authenticator() -> Authenticator:
    """Local single-user mode: every caller is the OS user, with every role."""
    me = local_identity()

    def authenticate(token: str | None) -> Identity:
        return me

    return authenticate


def project(request: Request) -> Project:
    """The project the server serves."""
    found: Project = request.app.state.project
    return found


def store(request: Request) -> Store:
    """The project's metadata store."""
    return project(request).store


def identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
) -> Identity:
    """The caller, from the request's ``Authorization: Bearer`` header (read here too when
    called without the dependency, as raw-body routes do)."""
    authenticate: Authenticator = request.app.state.authenticate
    if credentials is not None:
        token = credentials.credentials.strip()
    else:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    return authenticate(token or None)


def client_source(request: Request) -> str:
    """Where a request came from, for audit events: the client's address."""
    client = request.client
    return f"api:{client.host}" if client is not None else "api"


def access_policy(request: Request) -> AccessSection:
    """The project's access policy (``access:`` in ``opsloop.yaml``; the defaults without one):
    which aliases are protected, which deployments are production."""
    return policy.access_policy(project(request))
