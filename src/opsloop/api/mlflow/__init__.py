"""MLflow's tracking and registry REST API, answered over opsloop's store."""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
