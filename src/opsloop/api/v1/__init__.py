"""opsloop's own REST API, mounted at ``/api/v1``."""

from fastapi import APIRouter

from opsloop.api.v1 import remote

__all__ = ["router"]

router = APIRouter()
router.include_router(remote.router)
