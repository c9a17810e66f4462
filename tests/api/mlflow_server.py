"""A control-plane server for MLflow's client to talk to: the app under uvicorn in a thread on
127.0.0.1, and ``MLFLOW_TRACKING_URI`` pointed at it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow

from opsloop.api import create_app
from opsloop.api.deps import Authenticator
from opsloop.context import Project, open_project
from tests.api.live import serving

__all__ = ["Running", "mlflow_env", "project_at", "run_server"]


@dataclass
class Running:
    """A running server and the project it serves."""

    url: str
    project: Project


def project_at(folder: Path, store_url: str) -> Project:
    """An initialised project in ``folder`` whose store is ``store_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "opsloop.yaml").write_text(f"project: mlflow-compat\nstore:\n  url: {store_url}\n")
    return open_project(folder)


@contextlib.contextmanager
def run_server(
    project: Project, *, authenticate: Authenticator | None = None, timeout: float = 30.0
) -> Iterator[Running]:
    """Serve ``project`` on a free port until the block ends."""
    with serving(create_app(project, authenticate=authenticate), timeout=timeout) as url:
        yield Running(url, project)


@contextlib.contextmanager
def mlflow_env(url: str) -> Iterator[None]:
    """Point MLflow's client at ``url`` (and nothing else of the environment) for the block."""
    names = (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
    )
    saved = {k: os.environ.get(k) for k in names}
    for k in names:
        os.environ.pop(k, None)
    os.environ["MLFLOW_TRACKING_URI"] = url
    # Retries would hide a server error for minutes: one attempt, a short timeout.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "60"
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    fluent = mlflow.tracking.fluent
    # MLflow remembers the experiment last set per process: each server starts from Default.
    fluent._active_experiment_id = None
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = None
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
