"""The server's ASGI app: the control plane's API (``/api/v1``, MLflow's API) with the
dashboard's pages at ``/``, kept out of the OpenAPI document."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from opsloop.api import create_app
from opsloop.ui import pages

if TYPE_CHECKING:
    from fastapi import FastAPI

    from opsloop.api.deps import Authenticator
    from opsloop.context import Project

__all__ = ["create_server_app", "plotly_js"]

STATIC = Path(__file__).parent / "static"


def plotly_js() -> Path:
    """Plotly.js as the ``plotly`` package ships it (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the plotly package is not installed: pip install plotly")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def create_server_app(project: Project, *, authenticate: Authenticator | None = None) -> FastAPI:
    """The control-plane app of :func:`opsloop.api.create_app` with the dashboard mounted.

    Args:
        project: The project served.
        authenticate: As for ``create_app``; with one, the dashboard asks for a token on its
            login page (kept in an HttpOnly, SameSite=Strict cookie); without, local
            single-user mode, no login.
    """
    app = create_app(project, authenticate=authenticate)
    app.state.ui_login = authenticate is not None
    pages.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    script = plotly_js()

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return FileResponse(
            script,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return app
