"""Runs: list and search (filters, ordering), one run, its params, metric history and
artifacts (listed and downloaded)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from opsloop.api.pagination import (
    CursorParam,
    LimitParam,
    codec,
    page,
    scope_of,
    sort_value,
)
from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, Page, ProjectDep, StoreDep
from opsloop.errors import NotFoundError
from opsloop.secops.access import authorize
from opsloop.store.types import ArtifactInfo, MetricPoint, RunInfo, StepRunInfo

__all__ = ["router"]

router = APIRouter(tags=["runs"])

_FILTER = re.compile(r"^\s*(?P<field>[^<>=!~]+?)\s*(?P<op>>=|<=|!=|=|>|<|~)\s*(?P<value>.*?)\s*$")
_PLAIN_FIELDS = ("id", "name", "kind", "status", "user", "parent_id", "git_commit", "source")
_ORDER_FIELDS = ("started_at", "ended_at", "name", "kind", "status", "user")
_OPS = ("=", "!=", ">", ">=", "<", "<=", "~")

FilterParam = Annotated[
    list[str] | None,
    Query(
        alias="filter",
        description="Conditions all runs must meet, each FIELD OP VALUE: FIELD is a run "
        "field (name, status, kind, user …), metrics.KEY, params.KEY or tags.KEY; OP is "
        "= != > >= < <= or ~ (contains). E.g. metrics.accuracy>=0.9, params.model=rf.",
    ),
]
OrderParam = Annotated[
    str,
    Query(
        description="Sort field (started_at, ended_at, name, kind, status, user, metrics.KEY "
        "or params.KEY); a leading - sorts descending.",
        max_length=256,
    ),
]


def _field(run: RunInfo, field: str) -> Any:
    group, _, key = field.partition(".")
    if key and group in ("metrics", "params", "tags"):
        values: dict[str, Any] = getattr(run, group)
        return values.get(key)
    return getattr(run, field)


def _check_field(field: str, *, what: str, plain: tuple[str, ...]) -> None:
    group, _, key = field.partition(".")
    if key and group in ("metrics", "params", "tags"):
        return
    if field not in plain:
        raise HTTPException(
            422,
            f"{what}: unknown field {field!r}; use one of {', '.join(plain)}, "
            "metrics.KEY, params.KEY or tags.KEY",
        )


def _compare(actual: Any, op: str, wanted: str) -> bool:
    if actual is None:
        return op == "!="
    if op == "~":
        return wanted in str(actual)
    left: Any = actual
    right: Any = wanted
    if isinstance(actual, int | float):
        try:
            right = float(wanted)
        except ValueError:
            return op == "!="
    else:
        left = str(actual)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def _parse_filters(texts: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for text in texts:
        match = _FILTER.match(text)
        if match is None:
            raise HTTPException(
                422, f"filter {text!r}: expected FIELD OP VALUE, e.g. metrics.accuracy>=0.9"
            )
        field, op, value = match["field"], match["op"], match["value"]
        _check_field(field, what=f"filter {text!r}", plain=_PLAIN_FIELDS)
        out.append((field, op, value))
    return out


@router.get(
    "/runs",
    response_model=Page[RunInfo],
    responses=problems(400),
    summary="List and search runs",
)
def list_runs(
    request: Request,
    caller: Caller,
    store: StoreDep,
    kind: Annotated[str | None, Query(description="run, pipeline or trial.")] = None,
    status: Annotated[str | None, Query(description="running, finished, failed or killed.")] = None,
    name: Annotated[str | None, Query(description="Runs of this name.")] = None,
    parent_id: Annotated[str | None, Query(description="Child runs of this run.")] = None,
    filters: FilterParam = None,
    order_by: OrderParam = "-started_at",
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[RunInfo]:
    """Runs matching every filter, in the order asked (newest first by default)."""
    authorize(caller, "read")
    conditions = _parse_filters(filters or [])
    descending = order_by.startswith("-")
    field = order_by.lstrip("-+ ")
    _check_field(field, what=f"order_by {order_by!r}", plain=_ORDER_FIELDS)
    scope = scope_of(
        "runs",
        kind=kind,
        status=status,
        name=name,
        parent_id=parent_id,
        filter=sorted(filters or []),
        order_by=order_by,
    )
    if not conditions and field == "started_at":
        # The common list (newest or oldest first, no metric or param filter): keyset paging
        # in the database, so a page costs the same with ten runs or a million.
        after = None
        if cursor is not None:
            key = codec(request).decode(scope, cursor)
            try:
                after = (datetime.fromisoformat(key[0][2]), str(key[1][2]))
            except (TypeError, ValueError, IndexError):  # signed for this scope: never
                raise HTTPException(400, "the cursor is not valid for this list") from None
        got = store.runs.list_page(
            kind=kind,
            status=status,
            name=name,
            parent_id=parent_id,
            descending=descending,
            after=after,
            limit=limit + 1,
        )
        chosen = got[:limit]
        next_cursor = (
            codec(request).encode(scope, _keyset_key(chosen[-1])) if len(got) > limit else None
        )
        return Page[RunInfo](items=chosen, next_cursor=next_cursor)
    total = sum(store.runs.count_by_kind().values())
    # Conditions on the run's own text fields narrow the runs in the database (a search
    # by name reads the runs it finds, not all of them); every condition is then checked
    # exactly below (LIKE ignores case on some databases, the ~ filter does not).
    runs = store.runs.list(
        kind=kind,
        status=status,
        name=name,
        parent_id=parent_id,
        limit=max(total, 1),
        equal=[(f, v) for f, op, v in conditions if op == "=" and f in _PLAIN_FIELDS],
        containing=[(f, v) for f, op, v in conditions if op == "~" and f in _PLAIN_FIELDS],
    )
    found = [r for r in runs if all(_compare(_field(r, f), op, v) for f, op, v in conditions)]
    items, next_cursor = page(
        request,
        found,
        key=lambda r: [sort_value(_field(r, field)), sort_value(r.id)],
        scope=scope,
        cursor=cursor,
        limit=limit,
        descending=descending,
    )
    return Page[RunInfo](items=items, next_cursor=next_cursor)


def downsample(points: list[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """At most ``max_points`` of ``points`` (in order): the series cut into max_points/2
    equal stretches, each kept as its lowest and highest point, so spikes survive (a plain
    stride would drop them)."""
    if len(points) <= max_points:
        return points
    buckets = max_points // 2
    size = len(points) / buckets
    out: list[tuple[int, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        low = min(range(len(chunk)), key=lambda i: chunk[i][1])
        high = max(range(len(chunk)), key=lambda i: chunk[i][1])
        out.extend(chunk[i] for i in sorted({low, high}))
    return out


def _keyset_key(run: RunInfo) -> list[Any]:
    """The cursor key of a keyset page: the shape of the in-memory lists' keys, with the
    exact start time (ISO text) beside its timestamp."""
    when = sort_value(run.started_at)
    return [[when[0], when[1], run.started_at.isoformat()], sort_value(run.id)]


RunId = Annotated[str, Path(description="The run's id.")]


@router.get("/runs/{run_id}", response_model=RunInfo, responses=problems(404), summary="A run")
def get_run(caller: Caller, store: StoreDep, run_id: RunId) -> RunInfo:
    """One run with its params, tags and latest metric values."""
    authorize(caller, "read")
    return store.runs.get(run_id)


@router.get(
    "/runs/{run_id}/params",
    response_model=dict[str, str],
    responses=problems(404),
    summary="A run's params",
)
def get_params(caller: Caller, store: StoreDep, run_id: RunId) -> dict[str, str]:
    """The run's parameters."""
    authorize(caller, "read")
    return store.runs.get(run_id).params


@router.get(
    "/runs/{run_id}/metrics/{key}",
    response_model=Page[MetricPoint],
    responses=problems(400, 404),
    summary="A metric's history",
)
def metric_history(
    request: Request,
    caller: Caller,
    store: StoreDep,
    run_id: RunId,
    key: Annotated[str, Path(description="The metric's key.")],
    cursor: CursorParam = None,
    limit: LimitParam = 1000,
    max_points: Annotated[
        int | None,
        Query(
            ge=2,
            le=100_000,
            description="Downsample for a chart: at most this many points in one page, the "
            "lowest and highest value of each of max_points/2 equal runs of steps (timestamps "
            "are 0). Omit for every point, paged.",
        ),
    ] = None,
) -> Page[MetricPoint]:
    """Every point of one metric of a run, by step then time (or, with ``max_points``, a
    downsampled history that keeps each stretch's extremes)."""
    authorize(caller, "read")
    store.runs.get(run_id)
    if max_points is not None:
        envelope = store.runs.metric_envelope(run_id, key, max_points // 2)
        if envelope is not None:  # a long history: its envelope, computed by the database
            return Page[MetricPoint](
                items=[MetricPoint(key=key, value=v, step=st, timestamp=0) for st, v in envelope],
                next_cursor=None,
            )
        steps = store.runs.metric_steps(run_id, key)
        return Page[MetricPoint](
            items=[
                MetricPoint(key=key, value=v, step=st, timestamp=0)
                for st, v in downsample(steps, max_points)
            ],
            next_cursor=None,
        )
    points = store.runs.metric_history(run_id, key)
    indexed = list(enumerate(points))
    items, next_cursor = page(
        request,
        indexed,
        key=lambda p: [p[0]],
        scope=scope_of("metric", run=run_id, key=key),
        cursor=cursor,
        limit=limit,
    )
    return Page[MetricPoint](items=[p for _, p in items], next_cursor=next_cursor)


@router.get(
    "/runs/{run_id}/steps",
    response_model=list[StepRunInfo],
    responses=problems(404),
    summary="A pipeline run's steps",
)
def list_steps(caller: Caller, store: StoreDep, run_id: RunId) -> list[StepRunInfo]:
    """The steps of a pipeline run in the order they ran: status, cache hit (``cached_from``),
    times, CPU seconds and peak memory (empty for a plain run)."""
    authorize(caller, "read")
    store.runs.get(run_id)
    return store.steps.list(run_id)


@router.get(
    "/runs/{run_id}/artifacts",
    response_model=list[ArtifactInfo],
    responses=problems(404),
    summary="A run's artifacts",
)
def list_artifacts(caller: Caller, store: StoreDep, run_id: RunId) -> list[ArtifactInfo]:
    """The artifacts a run logged, by path."""
    authorize(caller, "read")
    store.runs.get(run_id)
    return store.runs.list_artifacts(run_id)


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The artifact's bytes.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **problems(404),
    },
    summary="Download an artifact",
)
def download_artifact(
    caller: Caller,
    proj: ProjectDep,
    run_id: RunId,
    path: Annotated[str, Path(description="The artifact's path, as listed.")],
    file: Annotated[
        str | None, Query(description="For a folder artifact: the file in it to download.")
    ] = None,
) -> Response:
    """The bytes of a file artifact, or of one file of a folder artifact."""
    authorize(caller, "read")
    store = proj.store
    store.runs.get(run_id)
    found = {a.path: a for a in store.runs.list_artifacts(run_id)}
    art = found.get(path)
    if art is None:
        raise NotFoundError(f"run {run_id} has no artifact {path!r}")
    digest = art.digest
    name = path
    if art.kind == "dir":
        manifest = proj.artifacts.get_manifest(art.digest)
        if file is None:
            raise NotFoundError(
                f"artifact {path!r} of run {run_id} is a folder",
                hint="name a file in it with ?file=, one of: "
                + ", ".join(list(manifest.files)[:5]),
            )
        entry = manifest.files.get(file)
        if entry is None:
            raise NotFoundError(f"folder artifact {path!r} of run {run_id} has no file {file!r}")
        digest, name = entry.digest, file
    elif file is not None:
        raise NotFoundError(f"artifact {path!r} of run {run_id} is a file, not a folder")
    data = proj.artifacts.get_bytes(digest)
    filename = quote(name.rsplit("/", 1)[-1], safe="")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
    )
