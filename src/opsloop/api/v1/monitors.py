"""Monitors (each deployment's monitoring, as its document sets it) and metric series."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, ProjectDep, StoreDep
from opsloop.api.v1.deployments import desired_state
from opsloop.secops.access import authorize
from opsloop.store.types import SeriesPointInfo

__all__ = ["router"]

router = APIRouter(tags=["monitors"])


class MonitorOut(BaseModel):
    """The monitoring of one deployment."""

    deployment: str
    model: str
    monitoring: dict[str, Any] = Field(
        description="The document's spec.monitoring (window, drift …); empty for the project's "
        "defaults."
    )
    remediation: str | None = Field(description="The remediation policy, when one is named.")
    series: int = Field(description="How many metric series are labelled with the deployment.")


class SeriesOut(BaseModel):
    """A metric series: a name and a label set."""

    name: str
    labels: dict[str, str]


def _labels(texts: list[str]) -> dict[str, str] | None:
    if not texts:
        return None
    labels = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"label {text!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


@router.get(
    "/monitors",
    response_model=list[MonitorOut],
    responses=problems(409),
    summary="List monitors",
)
def list_monitors(caller: Caller, proj: ProjectDep) -> list[MonitorOut]:
    """Every deployment in Git with its monitoring settings, by name."""
    authorize(caller, "read")
    desired = desired_state(proj)
    series = proj.store.series.list()
    out = []
    for name in sorted(desired.documents):
        data = desired.documents[name].document.to_data()
        spec = data.get("spec", {})
        out.append(
            MonitorOut(
                deployment=name,
                model=str(spec.get("model", "")),
                monitoring=dict(spec.get("monitoring") or {}),
                remediation=spec.get("remediation"),
                series=sum(1 for _, labels in series if labels.get("deployment") == name),
            )
        )
    return out


@router.get(
    "/series",
    response_model=Page[SeriesOut],
    responses=problems(400),
    summary="List metric series",
)
def list_series(
    request: Request,
    caller: Caller,
    store: StoreDep,
    prefix: Annotated[str, Query(description="Only names starting with this.")] = "",
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[SeriesOut]:
    """Every distinct series (name and labels), by name."""
    authorize(caller, "read")
    found = [SeriesOut(name=n, labels=labels) for n, labels in store.series.list(prefix)]
    items, next_cursor = page(
        request,
        found,
        key=lambda s: [
            sort_value(s.name),
            *(sort_value(f"{k}={v}") for k, v in sorted(s.labels.items())),
        ],
        scope=scope_of("series", prefix=prefix),
        cursor=cursor,
        limit=limit,
    )
    return Page[SeriesOut](items=items, next_cursor=next_cursor)


@router.get(
    "/series/points",
    response_model=list[SeriesPointInfo],
    responses=problems(),
    summary="Points of a metric series",
)
def series_points(
    caller: Caller,
    store: StoreDep,
    name: Annotated[str, Query(description="The series name.", min_length=1)],
    label: Annotated[
        list[str] | None,
        Query(
            description="KEY=VALUE (repeat): the series with exactly these labels; omit "
            "for every series of the name."
        ),
    ] = None,
    since: Annotated[datetime | None, Query(description="From this time on.")] = None,
    until: Annotated[datetime | None, Query(description="Before this time.")] = None,
    last: Annotated[int, Query(ge=1, le=100_000, description="Only the latest N points.")] = 1000,
) -> list[SeriesPointInfo]:
    """Points by time (oldest first), at most the latest ``last``."""
    authorize(caller, "read")
    return store.series.read(name, _labels(label or []), since=since, until=until, last=last)
