"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) over the project's
content-addressed artifact store.

A run's artifact URI is ``mlflow-artifacts:/<experiment>/<run id>/artifacts`` and a logged
model's ``mlflow-artifacts:/<experiment>/models/m-<run id>/artifacts``; MLflow's client PUTs,
GETs and lists files below them. A file's bytes go to ``project.artifacts`` under their digest,
and the file is recorded as an artifact of its opsloop run at its relative path
(``store.runs.log_artifact``), so ``opsloop runs show`` lists it and a re-upload replaces it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from opsloop.api import deps
from opsloop.api.mlflow.protocol import MlflowError, MlflowRoute
from opsloop.api.mlflow.tracking import LOGGED_MODEL_KIND, model_run_id
from opsloop.errors import NotFoundError
from opsloop.secops.access import Identity, authorize
from opsloop.store.acting import acting

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store
    from opsloop.store.types import ArtifactInfo

__all__ = ["ArtifactPath", "parse_artifact_path", "router"]

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)
_P = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass(frozen=True)
class ArtifactPath:
    """A path of MLflow's artifact namespace: the opsloop run owning it and the path below
    the run's artifact root ("" for the root)."""

    run_id: str
    rel: str
    logged_model: bool


def parse_artifact_path(path: str) -> ArtifactPath:
    """Read ``<experiment>/<run id>/artifacts[/<rel>]`` or
    ``<experiment>/models/m-<id>/artifacts[/<rel>]``.

    Raises:
        MlflowError: The path is of neither shape, or climbs out with ``..``.
    """
    parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise MlflowError(f"invalid artifact path {path!r}: '..' is not allowed")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return ArtifactPath(model_run_id(parts[2]), "/".join(parts[4:]), True)
    if len(parts) >= 3 and parts[2] == "artifacts":
        return ArtifactPath(parts[1], "/".join(parts[3:]), False)
    raise MlflowError(
        f"invalid artifact path {path!r}: expected <experiment>/<run id>/artifacts/<path>"
        " or <experiment>/models/<model id>/artifacts/<path>"
    )


def _owner(store: Store, where: ArtifactPath) -> None:
    run = store.runs.get(where.run_id)
    if run.id != where.run_id or (run.kind == LOGGED_MODEL_KIND) != where.logged_model:
        raise NotFoundError(f"no run or logged model owns the artifact path of {where.run_id}")


def _source(request: Request) -> str:
    return f"mlflow:{request.client.host}" if request.client else "mlflow"


@router.put(f"{_P}/{{path:path}}")
async def upload(
    path: str,
    request: Request,
    identity: Identity = Depends(deps.identity),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> dict[str, Any]:
    """Store one file and record it as an artifact of its run."""
    authorize(identity, "log")
    where = parse_artifact_path(path)
    if not where.rel:
        raise MlflowError(f"invalid artifact path {path!r}: it names no file")
    await run_in_threadpool(_owner, project.store, where)
    with tempfile.TemporaryDirectory(prefix="opsloop-mlflow-") as tmp:
        file = Path(tmp) / "upload"
        size = 0
        with file.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
                size += len(chunk)

        def keep() -> None:
            digest = project.artifacts.put_file(file)
            with acting(identity.name, _source(request)):
                project.store.runs.log_artifact(where.run_id, where.rel, digest, size)

        await run_in_threadpool(keep)
    return {}


def _find(store: Store, where: ArtifactPath) -> ArtifactInfo:
    for art in store.runs.list_artifacts(where.run_id):
        if art.path == where.rel:
            return art
    raise NotFoundError(f"artifact '{where.rel}' of run {where.run_id} does not exist")


@router.get(f"{_P}/{{path:path}}")
def download(
    path: str,
    identity: Identity = Depends(deps.identity),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> Response:
    """One file's bytes (checked against its digest on the way out of the store)."""
    authorize(identity, "read")
    art = _find(project.store, parse_artifact_path(path))
    return Response(project.artifacts.get_bytes(art.digest), media_type="application/octet-stream")


@router.delete(f"{_P}/{{path:path}}")
def delete(
    path: str,
    identity: Identity = Depends(deps.identity),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> dict[str, Any]:
    """MLflow's artifact delete: refused, the store keeps what a run produced."""
    authorize(identity, "log")
    _find(project.store, parse_artifact_path(path))
    raise MlflowError(
        "opsloop keeps the artifacts a run produced: they cannot be deleted", "INVALID_STATE"
    )


def children(arts: list[ArtifactInfo], rel: str) -> list[dict[str, Any]]:
    """The files and folders directly below ``rel`` ("" for the root), by name."""
    prefix = f"{rel}/" if rel else ""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    for art in arts:
        if not art.path.startswith(prefix):
            continue
        head, slash, _ = art.path[len(prefix) :].partition("/")
        if slash:
            dirs.add(head)
        else:
            files[head] = art.size
    out: list[dict[str, Any]] = [{"path": d, "is_dir": True} for d in dirs]
    out += [{"path": f, "is_dir": False, "file_size": n} for f, n in files.items()]
    return sorted(out, key=lambda f: str(f["path"]))


@router.get(_P)
def list_artifacts(
    path: str = "",
    identity: Identity = Depends(deps.identity),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """The files and folders directly below a path (none below a file or an unknown path)."""
    authorize(identity, "read")
    try:
        where = parse_artifact_path(path)
    except MlflowError:
        return {"files": []}
    return {"files": children(store.runs.list_artifacts(where.run_id), where.rel)}
