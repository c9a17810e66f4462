"""Data sets: recorded versions (content-addressed) and their lineage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, StoreDep
from opsloop.errors import NotFoundError
from opsloop.secops.access import authorize
from opsloop.store import Store
from opsloop.store.types import DatasetVersionInfo, ModelVersionInfo, RunInfo

__all__ = ["router"]

router = APIRouter(tags=["datasets"])

Digest = Annotated[
    str,
    Path(description="The version's content address.", pattern=r"^sha256:[0-9a-f]{64}$"),
]


class Lineage(BaseModel):
    """What a data set version fed."""

    dataset: DatasetVersionInfo
    model_versions: list[ModelVersionInfo] = Field(
        description="Model versions trained on this data set version."
    )
    runs: list[RunInfo] = Field(description="The runs that registered those versions.")


def _digests(store: Store) -> list[str]:
    """Every recorded version: each recording writes one ``dataset.recorded`` event."""
    events = store.events.list(object_type="dataset", kind="dataset.recorded", limit=10**9)
    return list(dict.fromkeys(e.object_id for e in events))


@router.get(
    "/datasets",
    response_model=Page[DatasetVersionInfo],
    responses=problems(400),
    summary="List data set versions",
)
def list_datasets(
    request: Request,
    caller: Caller,
    store: StoreDep,
    name: Annotated[str | None, Query(description="Only versions of this data set.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[DatasetVersionInfo]:
    """Recorded data set versions, newest first."""
    authorize(caller, "read")
    versions = []
    for digest in _digests(store):
        try:
            info = store.datasets.get(digest)
        except NotFoundError:
            continue
        if name is None or info.name == name:
            versions.append(info)
    items, next_cursor = page(
        request,
        versions,
        key=lambda d: [sort_value(d.created_at), sort_value(d.digest)],
        scope=scope_of("datasets", name=name),
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[DatasetVersionInfo](items=items, next_cursor=next_cursor)


@router.get(
    "/datasets/{digest}",
    response_model=DatasetVersionInfo,
    responses=problems(404),
    summary="A data set version",
)
def get_dataset(caller: Caller, store: StoreDep, digest: Digest) -> DatasetVersionInfo:
    """One recorded data set version: source, rows, schema."""
    authorize(caller, "read")
    return store.datasets.get(digest)


@router.get(
    "/datasets/{digest}/lineage",
    response_model=Lineage,
    responses=problems(404),
    summary="A data set version's lineage",
)
def lineage(caller: Caller, store: StoreDep, digest: Digest) -> Lineage:
    """The model versions trained on a data set version, and their runs."""
    authorize(caller, "read")
    dataset = store.datasets.get(digest)
    versions = [v for v in store.models.all_versions() if v.dataset_digest == digest]
    runs = []
    for run_id in dict.fromkeys(v.run_id for v in versions if v.run_id):
        try:
            runs.append(store.runs.get(run_id))
        except NotFoundError:  # the run was deleted; the version keeps its id
            continue
    return Lineage(dataset=dataset, model_versions=versions, runs=runs)
