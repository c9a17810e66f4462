"""Deployments: desired state from Git, live state and sync status as the reconciler last saw
them, traffic split; promote, set-traffic and rollback as Git commits made for the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from opsloop import gitops
from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, ProjectDep, git_lock, writing
from opsloop.context import Project
from opsloop.errors import GitOpsError, NotFoundError
from opsloop.names import NAME_PATTERN
from opsloop.secops.access import Identity, authorize
from opsloop.secops.policy import access_policy, deployment_action
from opsloop.store.types import DeploymentRecord, SyncHistoryEntry

__all__ = ["router"]

router = APIRouter(tags=["deployments"])

DeploymentName = Annotated[
    str, Path(description="The deployment's name.", pattern=f"^{NAME_PATTERN}$")
]
_REVISION = r"^[A-Za-z0-9_][A-Za-z0-9_.\/~^@{}\-]{0,199}$"


class TrafficShare(BaseModel):
    """The share of requests one version gets."""

    version: int = Field(ge=1)
    weight: float = Field(ge=0, le=100, description="Percent of the requests.")


class DeploymentOut(BaseModel):
    """A deployment: what Git asks for and what runs."""

    name: str
    file: str | None = Field(description="The document's path in the repository.")
    revision: str | None = Field(description="The commit the desired state was read at.")
    desired: dict[str, Any] | None = Field(
        description="The document at that commit (apiVersion, kind, metadata, spec); null "
        "when Git has none (the deployment was removed, or its document is invalid)."
    )
    problem: str | None = Field(description="Why the document cannot be used, when it cannot.")
    model: str | None
    version: int | None = Field(description="The main version the document names.")
    alias: str | None = Field(description="The alias the document follows, when it names one.")
    traffic: list[TrafficShare] = Field(description="The split between versions, if any.")
    shadow: list[int] = Field(description="Versions that get a copy of every request.")
    sync_status: str = Field(description="Synced, OutOfSync or Unknown (never synced).")
    health_status: str = Field(description="Healthy, Progressing, Degraded, Missing …")
    reason: str
    live: dict[str, Any] = Field(description="What the reconciler last saw running.")
    synced_revision: str | None = Field(description="The revision last applied.")
    updated_at: datetime | None = Field(description="When the reconciler last recorded it.")


class PromoteRequest(BaseModel):
    """What to promote."""

    model: str = Field(description="The registered model.", pattern=f"^{NAME_PATTERN}$")
    alias: str = Field(
        default="champion",
        pattern=f"^{NAME_PATTERN}$",
        description="The alias resolved now to a version (unless a version is given).",
    )
    version: int | None = Field(default=None, ge=1, description="Promote this version.")
    port: int | None = Field(
        default=None, ge=1024, le=65535, description="Port of a new deployment."
    )


class TrafficRequest(BaseModel):
    """A new traffic split."""

    traffic: list[TrafficShare] = Field(min_length=1, description="Adding up to 100.")
    shadow: list[int] | None = Field(
        default=None, description="Shadow versions; replaces the list when given."
    )


class RollbackRequest(BaseModel):
    """How to roll back."""

    to: str | None = Field(
        default=None,
        pattern=_REVISION,
        description="Restore the document as of this revision instead of reverting the last "
        "change.",
    )


class ChangeOut(BaseModel):
    """A change committed to Git (or not, when the document already said so)."""

    deployment: str
    file: str
    commit: str | None = Field(description="The new commit; null when nothing changed.")
    message: str
    version: int | None


class CommitOut(BaseModel):
    """A commit of a deployment's document."""

    sha: str
    author: str
    time: datetime
    subject: str


@dataclass
class _Desired:
    revision: str | None = None
    documents: dict[str, gitops.LoadedDocument] = field(default_factory=dict)
    problems: dict[str, gitops.DocumentProblem] = field(default_factory=dict)


def desired_state(project: Project) -> _Desired:
    """The committed desired state; empty when the project is no Git repository yet."""
    try:
        repo = gitops.GitRepo(project.dir)
    except GitOpsError:
        return _Desired()
    if not repo.has_commits():
        return _Desired()
    state = gitops.load_desired_state(
        repo, repo.relpath(project.dir / gitops.DEFAULT_FOLDER), revision="HEAD"
    )
    return _Desired(state.revision, dict(state.documents), state.problems_by_name())


def _authorize_change(caller: Identity, proj: Project, name: str) -> None:
    """Changing a deployment needs ``deploy`` on it, ``deploy.production`` when the project's
    access policy counts it as production (by name, or by its committed document's labels)."""
    loaded = desired_state(proj).documents.get(name)
    labels = loaded.document.metadata.labels if loaded is not None else {}
    action = deployment_action(name, access_policy(proj), labels=labels)
    authorize(caller, action, resource_type="deployment", resource=name)


def _recorded_model(record: DeploymentRecord | None) -> str | None:
    model = record.desired.get("model") if record is not None else None
    return str(model) if model is not None else None


def _out(name: str, desired: _Desired, record: DeploymentRecord | None) -> DeploymentOut:
    loaded = desired.documents.get(name)
    problem = desired.problems.get(name)
    doc = loaded.document if loaded is not None else None
    spec = doc.spec if doc is not None else None
    file = loaded.file if loaded else problem.file if problem else None
    if file is None and record is not None and isinstance(record.desired.get("file"), str):
        file = str(record.desired["file"])
    return DeploymentOut(
        name=name,
        file=file,
        revision=desired.revision,
        desired=doc.to_data() if doc is not None else None,
        problem=problem.message if problem is not None else None,
        model=spec.model if spec is not None else _recorded_model(record),
        version=spec.version if spec is not None else None,
        alias=spec.alias if spec is not None else None,
        traffic=[TrafficShare(version=t.version, weight=t.weight) for t in spec.traffic or []]
        if spec is not None
        else [],
        shadow=list(spec.shadow or []) if spec is not None else [],
        sync_status=record.sync_status if record else "Unknown",
        health_status=record.health_status if record else "Unknown",
        reason=record.reason if record else "not synced yet",
        live=record.live if record else {},
        synced_revision=record.revision if record else None,
        updated_at=record.updated_at if record else None,
    )


@router.get(
    "/deployments",
    response_model=Page[DeploymentOut],
    responses=problems(400, 409),
    summary="List deployments",
)
def list_deployments(
    request: Request,
    caller: Caller,
    proj: ProjectDep,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[DeploymentOut]:
    """Every deployment Git names or the reconciler recorded, by name."""
    authorize(caller, "read")
    desired = desired_state(proj)
    records = {r.name: r for r in proj.store.deployments.list()}
    names = sorted(set(desired.documents) | set(desired.problems) | set(records))
    chosen, next_cursor = page(
        request,
        names,
        key=lambda n: [sort_value(n)],
        scope=scope_of("deployments"),
        cursor=cursor,
        limit=limit,
    )
    items = [_out(n, desired, records.get(n)) for n in chosen]
    return Page[DeploymentOut](items=items, next_cursor=next_cursor)


@router.get(
    "/deployments/{name}",
    response_model=DeploymentOut,
    responses=problems(404, 409),
    summary="A deployment",
)
def get_deployment(caller: Caller, proj: ProjectDep, name: DeploymentName) -> DeploymentOut:
    """Desired state, live state, sync and health status, and traffic split."""
    authorize(caller, "read", resource_type="deployment", resource=name)
    desired = desired_state(proj)
    record = proj.store.deployments.get(name)
    if record is None and name not in desired.documents and name not in desired.problems:
        raise NotFoundError(f"deployment '{name}' does not exist")
    return _out(name, desired, record)


@router.get(
    "/deployments/{name}/syncs",
    response_model=list[SyncHistoryEntry],
    responses=problems(404),
    summary="A deployment's syncs",
)
def sync_history(
    caller: Caller,
    proj: ProjectDep,
    name: DeploymentName,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most entries.")] = 50,
) -> list[SyncHistoryEntry]:
    """The revisions the deployment was synced to, newest first."""
    authorize(caller, "read", resource_type="deployment", resource=name)
    return proj.store.deployments.history(name, limit=limit)


@router.get(
    "/deployments/{name}/commits",
    response_model=list[CommitOut],
    responses=problems(404, 409),
    summary="The commits of a deployment's document",
)
def commits(
    caller: Caller,
    proj: ProjectDep,
    name: DeploymentName,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most commits.")] = 50,
) -> list[CommitOut]:
    """Commits that changed the deployment's document, newest first."""
    authorize(caller, "read", resource_type="deployment", resource=name)
    found = gitops.document_history(name, project=proj, max_count=limit)
    return [CommitOut(sha=c.sha, author=c.author, time=c.time, subject=c.subject) for c in found]


def _change(res: gitops.ChangeResult) -> ChangeOut:
    return ChangeOut(
        deployment=res.deployment,
        file=res.file,
        commit=res.commit,
        message=res.message,
        version=res.version,
    )


@router.post(
    "/deployments/{name}/promote",
    response_model=ChangeOut,
    responses=problems(400, 404, 409),
    summary="Promote a model version to a deployment",
)
def promote(
    request: Request,
    caller: Caller,
    proj: ProjectDep,
    name: DeploymentName,
    body: Annotated[PromoteRequest, Body()],
) -> ChangeOut:
    """Write the version an alias names now (or the version given) into the deployment's
    document and commit it, authored by the caller; the reconciler applies it."""
    _authorize_change(caller, proj, name)
    with git_lock, writing(request, caller):
        res = gitops.promote(
            body.model,
            to=name,
            alias=body.alias,
            version=body.version,
            project=proj,
            port=body.port,
        )
    return _change(res)


@router.post(
    "/deployments/{name}/traffic",
    response_model=ChangeOut,
    responses=problems(400, 404, 409),
    summary="Set a deployment's traffic split",
)
def set_traffic(
    request: Request,
    caller: Caller,
    proj: ProjectDep,
    name: DeploymentName,
    body: Annotated[TrafficRequest, Body()],
) -> ChangeOut:
    """Commit a new split (percent per version, adding up to 100), authored by the caller."""
    _authorize_change(caller, proj, name)
    weights: dict[int, float] = {}
    for share in body.traffic:
        if share.version in weights:
            raise GitOpsError(f"version {share.version} is given twice")
        weights[share.version] = share.weight
    with git_lock, writing(request, caller):
        res = gitops.set_traffic(name, weights, shadow=body.shadow, project=proj)
    return _change(res)


@router.post(
    "/deployments/{name}/rollback",
    response_model=ChangeOut,
    responses=problems(400, 404, 409),
    summary="Roll a deployment back",
)
def rollback(
    request: Request,
    caller: Caller,
    proj: ProjectDep,
    name: DeploymentName,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> ChangeOut:
    """Revert the last commit that changed the deployment's document (or restore it as of
    ``to``), as a new commit authored by the caller."""
    _authorize_change(caller, proj, name)
    with git_lock, writing(request, caller):
        res = gitops.rollback(name, to=body.to if body else None, project=proj)
    return _change(res)
