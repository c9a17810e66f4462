"""Monitors (each deployment's monitoring, as its document sets it) and metric series."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from opsloop.api.pagination import CursorParam, LimitParam, page, scope_of, sort_value
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, ProjectDep, StoreDep
from opsloop.api.v1.deployments import desired_state
from opsloop.errors import MonitorError, NotFoundError
from opsloop.loop.monitoring import deployment_drift
from opsloop.secops.access import authorize
from opsloop.spec.monitoring import parse_duration
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


class DistributionOut(BaseModel):
    """Reference and current shares of a feature's values, one per bar."""

    kind: Literal["histogram", "categories"] = Field(
        description="'histogram' (numeric bins) or 'categories'."
    )
    labels: list[str] = Field(description="One label per bar (a bin's lower edge, a category).")
    edges: list[float] | None = Field(
        description="Bin edges of a histogram (one more than the labels); the outer bins also "
        "hold the values beyond them. Null for categories."
    )
    reference: list[float] = Field(description="Share of the reference profile per bar.")
    current: list[float] = Field(description="Share of the window's values per bar.")


class FeatureDriftOut(BaseModel):
    """The drift of one feature in the window."""

    name: str
    kind: Literal["numeric", "categorical"]
    status: Literal["ok", "no_data", "too_few"] = Field(
        description="'too_few': fewer values than the verdict needs; 'no_data': none."
    )
    method: str = Field(description="The statistic that decides (ks, wasserstein, psi …).")
    score: float | None = Field(
        description="The method's statistic (a p-value for ks, "
        "chisquare and z; a distance otherwise)."
    )
    threshold: float | None = Field(description="The method's threshold.")
    drift_detected: bool
    missing_rate: float | None = Field(description="Share of the window's values missing.")
    distribution: DistributionOut | None = Field(
        description="Reference and current shares per bin or category; null without values."
    )


class DriftOut(BaseModel):
    """Reference and current distributions of a deployment's window, per feature."""

    deployment: str
    model: str = Field(description="The model checked.")
    version: str = Field(
        description="The version checked: the serving version with the most traffic that "
        "answered in the window, else the one that answered most rows."
    )
    since: datetime = Field(description="Start of the window (inclusive).")
    until: datetime = Field(description="End of the window (exclusive).")
    window_s: float = Field(description="The window's length in seconds.")
    window_source: str = Field(description="Where the window's length comes from, in words.")
    rows: int = Field(description="Rows the version answered in the window.")
    share_drifted: float = Field(description="Share of the features tested that drift.")
    most_drifted: str | None = Field(
        description="The feature furthest past its threshold, a drifting one first."
    )
    features: list[FeatureDriftOut] = Field(description="Per feature, in the profile's order.")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@router.get(
    "/monitors/{deployment}/drift",
    response_model=DriftOut,
    responses=problems(404, 409),
    summary="Reference and current distributions of a window",
)
def monitor_drift(
    caller: Caller,
    proj: ProjectDep,
    deployment: Annotated[str, Path(description="The deployment.")],
    until: Annotated[
        datetime | None,
        Query(
            description="End of the window (ISO 8601; UTC without a zone). Default: the end "
            "of the deployment's latest monitored window that holds requests."
        ),
    ] = None,
    window: Annotated[
        str | None,
        Query(
            description="Length of the window: seconds or text such as 30s, 15m, 1h30m. "
            "Default: the deployment's monitoring window."
        ),
    ] = None,
) -> DriftOut:
    """The drift of one window of ``deployment`` as its monitor computes it, with the
    deployment's own window and thresholds: per feature the deciding method, its score and
    threshold, and the reference and current shares per bin or category.

    An unknown deployment answers 404; a window without predictions, a version without a
    reference profile or a log without inputs answers 422."""
    authorize(caller, "read")
    store = proj.store
    if (
        deployment not in desired_state(proj).documents
        and store.deployments.get(deployment) is None
        and store.predictions.newest_time(deployment) is None
    ):
        raise NotFoundError(
            f"no deployment '{deployment}': not in Git, not reconciled, no predictions logged",
            hint="GET /api/v1/monitors lists the deployments",
        )
    length = None
    if window is not None:
        try:
            length = parse_duration(window)
        except (ValueError, OverflowError) as exc:
            raise MonitorError(f"window: {exc}", hint="use e.g. 30s, 15m, 1h or 1d") from None
    found = deployment_drift(
        proj, deployment, window=length, until=until, given="given with the window parameter"
    )
    checked = found.checked
    features = [
        FeatureDriftOut(
            name=f.name,
            kind=f.kind,
            status=f.status,
            method=f.method,
            score=_finite(f.score),
            threshold=_finite(f.threshold),
            drift_detected=f.drift_detected,
            missing_rate=_finite(f.missing_rate),
            distribution=DistributionOut.model_validate(f.distribution.model_dump())
            if f.distribution is not None
            else None,
        )
        for f in checked.drift.features.values()
    ]
    return DriftOut(
        deployment=deployment,
        model=checked.model,
        version=checked.version,
        since=checked.since,
        until=checked.until,
        window_s=checked.window.total_seconds(),
        window_source=found.window_source,
        rows=checked.rows,
        share_drifted=checked.drift.share_drifted,
        most_drifted=checked.most_drifted,
        features=features,
    )
