"""Errors are RFC 9457 problem details; nothing internal or secret reaches a body."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from opsloop import errors
from opsloop.api import create_app
from opsloop.api.problems import status_of
from opsloop.context import Project
from opsloop.redact import remember_secret
from tests.api.conftest import is_problem, running


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.NotFoundError("x"), 404),
        (errors.AlreadyExistsError("x"), 409),
        (errors.AuthenticationError("x"), 401),
        (errors.PermissionDeniedError("x"), 403),
        (errors.RollbackError("x"), 409),
        (errors.RegistryError("x"), 409),
        (errors.GitOpsError("x"), 409),
        (errors.SignatureError("x"), 409),
        (errors.SpecError("x"), 422),
        (errors.ConfigError("x"), 422),
        (errors.ContractError("x"), 422),
        (errors.ArtifactError("x"), 422),
        (errors.StoreError("x"), 503),
        (errors.PipelineError("x"), 500),
    ],
)
def test_status_of_each_error(error: errors.OpsloopError, status: int) -> None:
    assert status_of(error) == status


def _failing_app(project: Project) -> FastAPI:
    app = create_app(project)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail at /secret/path")

    @app.get("/leak")
    def leak() -> None:
        raise errors.GitOpsError(
            "cannot push to https://bob:hunter2pass@git.example.com/repo.git",
            hint="token s3cr3t-t0ken-value was refused",
        )

    @app.get("/store")
    def store() -> None:
        raise errors.StoreError("postgresql://app:pgpass99@db/opsloop is down")

    return app


def test_unexpected_errors_and_secrets_stay_out_of_bodies(project: Project) -> None:
    remember_secret("s3cr3t-t0ken-value")
    with running(_failing_app(project)) as url, httpx.Client(base_url=url) as c:
        r = c.get("/boom")
        body = is_problem(r, 500)
        assert body["detail"] == "the server failed to answer" and "secret" not in r.text
        r = c.get("/leak")
        body = is_problem(r, 409)
        assert "hunter2pass" not in r.text and "s3cr3t-t0ken-value" not in r.text
        assert "git.example.com" in body["detail"]
        r = c.get("/store")
        body = is_problem(r, 503)
        assert "pgpass99" not in r.text and "unavailable" in body["detail"]
        r = c.delete("/api/v1/runs")
        assert is_problem(r, 405)["type"].endswith("/method-not-allowed")
        body = is_problem(c.get("/api/v1/series/points"), 422)
        assert body["errors"] == [{"field": "query.name", "message": "Field required"}]
