"""MLflow's tracking and registry REST API, answered over opsloop's store.

An existing MLflow user points ``MLFLOW_TRACKING_URI`` at an opsloop server and their code runs
unchanged; their runs are opsloop runs, their registered models opsloop's. The subset answered
is what MLflow's Python client calls for tracking (experiments, runs, metrics, params, tags,
metric history, search, MLflow 3's logged models), artifacts (MLflow's artifact proxy) and the
registry (registered models, versions, aliases):

    protocol      MLflow's error format, request fields, paging
    experiments   experiments, kept as audit events
    search        MLflow's filter and order_by syntax
    tracking      /api/2.0/mlflow/experiments, runs, metrics, logged-models
    artifacts     /api/2.0/mlflow-artifacts/artifacts
    registry      /api/2.0/mlflow/registered-models, model-versions

These routes are not part of opsloop's OpenAPI document (``/api/v1``): their contract is
MLflow's.
"""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsloop.api.mlflow import artifacts, registry, tracking

__all__ = ["router"]

router = APIRouter()
router.include_router(tracking.router)
router.include_router(artifacts.router)
router.include_router(registry.router)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# Last, so it only answers what no route above does. MLflow's client reads ENDPOINT_NOT_FOUND
# as "this server does not have it" and falls back where it can (as for the server-info probe).
@router.api_route("/api/{version}/mlflow/{rest:path}", methods=_METHODS, include_in_schema=False)
@router.api_route(
    "/api/{version}/mlflow-artifacts/{rest:path}", methods=_METHODS, include_in_schema=False
)
def not_answered(request: Request) -> JSONResponse:
    """MLflow's answer for an endpoint this server does not implement."""
    return JSONResponse(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"opsloop's MLflow-compatible API does not answer"
            f" {request.method} {request.url.path}: it answers the tracking, artifact and registry"
            " calls of MLflow's client (not traces, prompts, gateway or webhooks)",
        },
        status_code=404,
    )
