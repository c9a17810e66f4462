"""opsloop's own REST API, mounted at ``/api/v1``: one router per concern."""

from fastapi import APIRouter

from opsloop.api.v1 import (
    access,
    costs,
    datasets,
    deployments,
    events,
    incidents,
    models,
    monitors,
    remote,
    runs,
)

__all__ = ["router"]

router = APIRouter()
router.include_router(access.router)
router.include_router(runs.router)
router.include_router(datasets.router)
router.include_router(models.router)
router.include_router(deployments.router)
router.include_router(monitors.router)
router.include_router(incidents.router)
router.include_router(events.router)
router.include_router(costs.router)
router.include_router(remote.router)
