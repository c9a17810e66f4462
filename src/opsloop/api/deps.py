"""What every handler depends on: the project, its store, and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Request

from opsloop.secops.access import Identity, local_identity

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store

__all__ = ["Authenticator", "identity", "local_authenticator", "project", "store"]

#: Turns a bearer token (None when the request sent none) into the caller's identity, or
#: raises ``AuthenticationError``.
Authenticator = Callable[[str | None], Identity]


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


def identity(request: Request) -> Identity:
    """The caller, from the request's ``Authorization: Bearer`` header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    authenticate: Authenticator = request.app.state.authenticate
    return authenticate(token.strip() if scheme.lower() == "bearer" and token.strip() else None)
