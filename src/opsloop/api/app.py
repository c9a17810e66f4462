"""The ASGI application of the control plane."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from opsloop import __version__
from opsloop.aiops.receiver import AlertReceiver
from opsloop.api import mlflow, v1
from opsloop.api.deps import Authenticator, local_authenticator
from opsloop.api.pagination import CursorCodec
from opsloop.api.problems import Problem, install_problem_handlers

if TYPE_CHECKING:
    from opsloop.context import Project

__all__ = ["create_app"]

DESCRIPTION = """\
The control plane of one opsloop project: runs, data sets, models, deployments, monitors,
incidents and the audit log.

Lists are paged: pass a page's `next_cursor` as `?cursor=` for the next one. Errors are RFC
9457 problem details (`application/problem+json`)."""


def create_app(project: Project, *, authenticate: Authenticator | None = None) -> FastAPI:
    """The control-plane app over one project's store, artifact store and Git repository.

    Args:
        project: The project served.
        authenticate: Turns a request's bearer token (None when it sent none) into an
            identity, raising ``AuthenticationError``; default local single-user mode, where
            every caller is the OS user with every role (and the OpenAPI document declares no
            authentication).
    """
    app = FastAPI(
        title="opsloop",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.project = project
    app.state.authenticate = authenticate or local_authenticator()
    app.state.cursors = CursorCodec()
    # Alert deliveries that arrive together are correlated in one transaction.
    app.state.alert_receiver = AlertReceiver(project.store)
    install_problem_handlers(app)
    app.include_router(v1.router, prefix="/api/v1")
    app.include_router(mlflow.router)
    local = authenticate is None

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            if local:
                # Local single-user mode asks for no token: the document says so.
                components.pop("securitySchemes", None)
                for path in schema.get("paths", {}).values():
                    for operation in path.values():
                        operation.pop("security", None)
                        operation.get("responses", {}).pop("401", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
