"""The ASGI application of the control plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from opsloop.api import mlflow, v1
from opsloop.api.deps import Authenticator, local_authenticator

if TYPE_CHECKING:
    from opsloop.context import Project

__all__ = ["create_app"]


def create_app(project: Project, *, authenticate: Authenticator | None = None) -> FastAPI:
    """The control-plane app over one project's store, artifact store and Git repository.

    Args:
        project: The project served.
        authenticate: Turns a request's bearer token (None when it sent none) into an
            identity, raising ``AuthenticationError``; default local single-user mode, where
            every caller is the OS user with every role.
    """
    app = FastAPI(
        title="opsloop",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.project = project
    app.state.authenticate = authenticate or local_authenticator()
    app.include_router(v1.router, prefix="/api/v1")
    app.include_router(mlflow.router)
    return app
