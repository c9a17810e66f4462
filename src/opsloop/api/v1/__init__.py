"""opsloop's own REST API, mounted at ``/api/v1``."""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
