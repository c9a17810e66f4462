"""MLflow's tracking API: experiments, runs, metrics, params, tags, logged models.

An MLflow run is an opsloop run (``store.runs``): the same row, params, tags and metric
points, so it shows in ``opsloop runs list`` next to opsloop's own. What MLflow has and an
opsloop run has not is kept in tags under ``opsloop.mlflow.`` (hidden from MLflow's client):
the experiment (see :mod:`~opsloop.api.mlflow.experiments`), a soft delete, and the models a
run logged. An MLflow 3 logged model (``mlflow.<flavor>.log_model``) is an opsloop run of kind
``logged-model`` whose parent is the run that logged it: its params, tags, status (PENDING is
running, READY finished, UPLOAD_FAILED failed) and artifacts are that run's; its id is ``m-``
and the run's id.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from opsloop.api import deps
from opsloop.api.mlflow import experiments
from opsloop.api.mlflow.experiments import DEFAULT_ID, EXPERIMENT_TAG
from opsloop.api.mlflow.protocol import (
    MAX_RESULTS,
    Call,
    MlflowError,
    MlflowRoute,
    as_list,
    call,
    ms,
    opt_str,
    page,
    req_str,
    to_float,
    to_int,
)
from opsloop.api.mlflow.search import matches, parse_filter, parse_order_by, sort_rows
from opsloop.errors import NotFoundError
from opsloop.secops.access import authorize
from opsloop.store.acting import acting

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store
    from opsloop.store.repos.runs import MetricRow
    from opsloop.store.types import RunInfo

__all__ = ["LOGGED_MODEL_KIND", "model_run_id", "router", "run_artifact_root"]

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)
_P = "/api/2.0/mlflow"

LOGGED_MODEL_KIND = "logged-model"
_HIDDEN = "opsloop.mlflow."
_DELETED_TAG = "opsloop.mlflow.lifecycle_stage"
_OUTPUTS_TAG = "opsloop.mlflow.outputs"
_MODEL_TYPE_TAG = "opsloop.mlflow.model_type"
_STATUS_MESSAGE_TAG = "opsloop.mlflow.status_message"
_SEARCH_SCAN = 5000  # runs a search looks through, newest first

_RUN_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
_END_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
_MODEL_STATUS = {
    "running": "LOGGED_MODEL_PENDING",
    "finished": "LOGGED_MODEL_READY",
    "failed": "LOGGED_MODEL_UPLOAD_FAILED",
    "killed": "LOGGED_MODEL_UPLOAD_FAILED",
}


def _num(value: float | None) -> float | str:
    """A double as protobuf's JSON writes it (NaN and the infinities as strings)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _pairs(items: Any, what: str) -> dict[str, str]:
    """``[{"key": k, "value": v}, ...]`` as a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        if not isinstance(item, dict) or not item.get("key"):
            raise MlflowError(f"every {what} needs a key, got {item!r}")
        out[str(item["key"])] = str(item.get("value", ""))
    return out


def _experiment_of(run: RunInfo) -> str:
    return run.tags.get(EXPERIMENT_TAG, DEFAULT_ID)


def model_run_id(model_id: str) -> str:
    """The opsloop run holding the logged model ``model_id`` (``m-<run id>``)."""
    return model_id.removeprefix("m-")


def run_artifact_root(run: RunInfo) -> str:
    """Where MLflow's client puts a run's (or a logged model's) artifacts."""
    if run.kind == LOGGED_MODEL_KIND:
        return f"mlflow-artifacts:/{_experiment_of(run)}/models/m-{run.id}/artifacts"
    return f"mlflow-artifacts:/{_experiment_of(run)}/{run.id}/artifacts"


def _visible(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items() if not k.startswith(_HIDDEN)]


def _get_run(store: Store, run_id: str) -> RunInfo:
    run = store.runs.get(run_id)
    if run.id != run_id or run.kind == LOGGED_MODEL_KIND:
        raise NotFoundError(f"Run '{run_id}' not found")
    return run


def run_json(run: RunInfo) -> dict[str, Any]:
    """MLflow's ``Run`` message for an opsloop run."""
    info = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.tags.get("mlflow.runName", run.name),
        "experiment_id": _experiment_of(run),
        "user_id": run.tags.get("mlflow.user", run.user),
        "status": _RUN_STATUS.get(run.status, "RUNNING"),
        "start_time": ms(run.started_at),
        "end_time": ms(run.ended_at),
        "artifact_uri": run_artifact_root(run),
        "lifecycle_stage": run.tags.get(_DELETED_TAG, "active"),
    }
    outputs = json.loads(run.tags.get(_OUTPUTS_TAG, "[]"))
    return {
        "info": {k: v for k, v in info.items() if v is not None},
        "data": {
            "metrics": [
                {"key": k, "value": _num(v), "timestamp": 0, "step": 0}
                for k, v in run.metrics.items()
            ],
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": _visible(run.tags),
        },
        "inputs": {},
        "outputs": {"model_outputs": outputs},
    }


def _lookup(run: RunInfo) -> Any:
    info = run_json(run)["info"]

    def value(entity: str, key: str) -> Any:
        if entity == "metrics":
            return run.metrics.get(key)
        if entity == "params":
            return run.params.get(key)
        if entity == "tags":
            return run.tags.get(key)
        if entity == "attributes":
            key = {"run_name": "run_name", "name": "run_name", "id": "run_id"}.get(key, key)
            return info.get(key)
        return None

    return value


# ---------------------------------------------------------------- experiments


@router.post(f"{_P}/experiments/create")
def create_experiment(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Create an experiment."""
    authorize(c.identity, "log")
    with acting(c.identity.name, c.source):
        exp = experiments.create(
            store, req_str(c.fields, "name"), _pairs(c.fields.get("tags"), "tag")
        )
    return {"experiment_id": exp.id}


@router.get(f"{_P}/experiments/get")
def get_experiment(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One experiment by id."""
    authorize(c.identity, "read")
    return {"experiment": experiments.get(store, req_str(c.fields, "experiment_id")).to_json()}


@router.get(f"{_P}/experiments/get-by-name")
def get_experiment_by_name(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One experiment by name."""
    authorize(c.identity, "read")
    exp = experiments.get_by_name(store, req_str(c.fields, "experiment_name"))
    return {"experiment": exp.to_json()}


def _view_ok(deleted: bool, view: Any) -> bool:
    view = str(view or "ACTIVE_ONLY")
    if view in ("ALL", "3"):
        return True
    if view in ("DELETED_ONLY", "2"):
        return deleted
    return not deleted


@router.api_route(f"{_P}/experiments/search", methods=["GET", "POST"])
def search_experiments(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Experiments matching a filter on ``name``, ``tags.<key>`` or times."""
    authorize(c.identity, "read")
    clauses = parse_filter(opt_str(c.fields, "filter"))
    found = []
    for exp in experiments.all_experiments(store).values():
        if not _view_ok(exp.deleted, c.fields.get("view_type")):
            continue
        row = exp.to_json()

        def value(entity: str, key: str, exp: Any = exp, row: dict[str, Any] = row) -> Any:
            if entity == "tags":
                return exp.tags.get(key)
            return row.get(key)

        if matches(clauses, value):
            found.append(row)
    order = parse_order_by(as_list(c.fields.get("order_by"))) or [
        ("attributes", "last_update_time", False),
        ("attributes", "experiment_id", False),
    ]
    found = sort_rows(found, order, lambda r: lambda e, k: r.get(k))
    return page(found, c.fields, "experiments")


def _experiment_change(kind: str, details: Any) -> Any:
    def handler(
        c: Call = Depends(call),  # noqa: B008
        store: Store = Depends(deps.store),  # noqa: B008
    ) -> dict[str, Any]:
        authorize(c.identity, "log")
        with acting(c.identity.name, c.source):
            experiments.change(store, req_str(c.fields, "experiment_id"), kind, details(c.fields))
        return {}

    return handler


router.post(f"{_P}/experiments/delete")(_experiment_change("deleted", lambda f: {}))
router.post(f"{_P}/experiments/restore")(_experiment_change("restored", lambda f: {}))
router.post(f"{_P}/experiments/update")(
    _experiment_change("renamed", lambda f: {"name": req_str(f, "new_name")})
)
router.post(f"{_P}/experiments/set-experiment-tag")(
    _experiment_change(
        "tag_set", lambda f: {"key": req_str(f, "key"), "value": str(f.get("value", ""))}
    )
)
router.post(f"{_P}/experiments/delete-experiment-tag")(
    _experiment_change("tag_deleted", lambda f: {"key": req_str(f, "key")})
)


# ---------------------------------------------------------------- runs


@router.post(f"{_P}/runs/create")
def create_run(
    c: Call = Depends(call),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> dict[str, Any]:
    """Start a run in an experiment (the Default one when none is named)."""
    authorize(c.identity, "log")
    store = project.store
    exp = experiments.get(store, opt_str(c.fields, "experiment_id") or DEFAULT_ID)
    if exp.deleted:
        raise MlflowError(f"experiment {exp.id} is deleted: restore it to log runs to it")
    tags = _pairs(c.fields.get("tags"), "tag")
    name = opt_str(c.fields, "run_name") or tags.get("mlflow.runName") or "mlflow-run"
    tags.setdefault("mlflow.runName", name)
    user = opt_str(c.fields, "user_id")
    if user:
        tags.setdefault("mlflow.user", user)
    tags[EXPERIMENT_TAG] = exp.id
    with acting(c.identity.name, c.source):
        run = store.runs.create(
            name,
            project=project.name,
            git_commit=tags.get("mlflow.source.git.commit"),
            source=tags.get("mlflow.source.name"),
            tags=tags,
        )
    return {"run": run_json(run)}


@router.get(f"{_P}/runs/get")
def get_run(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One run with its params, tags and latest metrics."""
    authorize(c.identity, "read")
    return {"run": run_json(_get_run(store, req_str(c.fields, "run_id", "run_uuid")))}


@router.post(f"{_P}/runs/update")
def update_run(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """End a run (FINISHED, FAILED, KILLED) and/or rename it."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id", "run_uuid")
    _get_run(store, run_id)
    status = opt_str(c.fields, "status")
    if status is not None and status not in (*_END_STATUS, "RUNNING", "SCHEDULED"):
        raise MlflowError(f"invalid run status {status!r}")
    with acting(c.identity.name, c.source):
        name = opt_str(c.fields, "run_name")
        if name:
            store.runs.set_tags(run_id, {"mlflow.runName": name})
        if status in _END_STATUS:
            store.runs.finish(run_id, _END_STATUS[status])
    return {"run_info": run_json(_get_run(store, run_id))["info"]}


def _set_stage(stage: str) -> Any:
    def handler(
        c: Call = Depends(call),  # noqa: B008
        store: Store = Depends(deps.store),  # noqa: B008
    ) -> dict[str, Any]:
        authorize(c.identity, "log")
        run_id = req_str(c.fields, "run_id")
        _get_run(store, run_id)
        with acting(c.identity.name, c.source):
            store.runs.set_tags(run_id, {_DELETED_TAG: stage})
        return {}

    return handler


# MLflow deletes a run softly (it can be restored): the run keeps its data, marked deleted.
router.post(f"{_P}/runs/delete")(_set_stage("deleted"))
router.post(f"{_P}/runs/restore")(_set_stage("active"))


def _metric_row(item: Any, now: int) -> MetricRow:
    if not isinstance(item, dict) or not item.get("key"):
        raise MlflowError(f"every metric needs a key, got {item!r}")
    key = str(item["key"])
    if "value" not in item:
        raise MlflowError(f"metric '{key}' has no value")
    return (
        key,
        to_float(item["value"], f"metric '{key}' value"),
        to_int(item.get("step"), f"metric '{key}' step", 0),
        to_int(item.get("timestamp"), f"metric '{key}' timestamp", now),
    )


@router.post(f"{_P}/runs/log-metric")
def log_metric(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One metric point."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id", "run_uuid")
    row = _metric_row(c.fields, int(time.time() * 1000))
    with acting(c.identity.name, c.source):
        store.runs.log_metric_points(run_id, [row])
    return {}


@router.post(f"{_P}/runs/log-parameter")
def log_param(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One parameter (a changed value is refused, as MLflow does)."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id", "run_uuid")
    with acting(c.identity.name, c.source):
        store.runs.log_params(run_id, {req_str(c.fields, "key"): str(c.fields.get("value", ""))})
    return {}


@router.post(f"{_P}/runs/set-tag")
def set_tag(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Set one run tag."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id", "run_uuid")
    key = req_str(c.fields, "key")
    if key.startswith(_HIDDEN):
        raise MlflowError(f"tag keys starting with '{_HIDDEN}' are reserved")
    with acting(c.identity.name, c.source):
        store.runs.set_tags(run_id, {key: str(c.fields.get("value", ""))})
    return {}


@router.post(f"{_P}/runs/delete-tag")
def delete_tag(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Remove one run tag."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id")
    key = req_str(c.fields, "key")
    if key.startswith(_HIDDEN):
        raise MlflowError(f"tag keys starting with '{_HIDDEN}' are reserved")
    _get_run(store, run_id)
    with acting(c.identity.name, c.source):
        store.runs.delete_tag(run_id, key)
    return {}


@router.post(f"{_P}/runs/log-batch")
def log_batch(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Params, tags and metric points of one run; the points are one transaction."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id")
    metrics = c.fields.get("metrics") or []
    if not isinstance(metrics, list):
        raise MlflowError("'metrics' must be a list")
    now = int(time.time() * 1000)
    rows = [_metric_row(item, now) for item in metrics]
    params = _pairs(c.fields.get("params"), "param")
    tags = _pairs(c.fields.get("tags"), "tag")
    if any(k.startswith(_HIDDEN) for k in tags):
        raise MlflowError(f"tag keys starting with '{_HIDDEN}' are reserved")
    with acting(c.identity.name, c.source):
        if params:
            store.runs.log_params(run_id, params)
        if tags:
            store.runs.set_tags(run_id, tags)
        store.runs.log_metric_points(run_id, rows)
    return {}


@router.post(f"{_P}/runs/log-model")
def log_model_history(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Append a model's MLmodel description to the run's ``mlflow.log-model.history`` tag."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id")
    model = json.loads(req_str(c.fields, "model_json"))
    run = _get_run(store, run_id)
    history = json.loads(run.tags.get("mlflow.log-model.history", "[]"))
    history.append(model)
    with acting(c.identity.name, c.source):
        store.runs.set_tags(run_id, {"mlflow.log-model.history": json.dumps(history)})
    return {}


@router.post(f"{_P}/runs/outputs")
def log_outputs(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Record the logged models a run produced (MLflow 3's run outputs)."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id")
    run = _get_run(store, run_id)
    outputs = json.loads(run.tags.get(_OUTPUTS_TAG, "[]"))
    for item in c.fields.get("models") or []:
        model_id = req_str(item, "model_id")
        _get_logged(store, model_id)
        outputs.append({"model_id": model_id, "step": to_int(item.get("step"), "step", 0)})
    with acting(c.identity.name, c.source):
        store.runs.set_tags(run_id, {_OUTPUTS_TAG: json.dumps(outputs)})
    return {}


@router.post(f"{_P}/runs/log-inputs")
def log_inputs(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Record the data sets a run read, as ``mlflow.inputs.<name>`` tags of the run."""
    authorize(c.identity, "log")
    run_id = req_str(c.fields, "run_id")
    _get_run(store, run_id)
    tags = {}
    for item in c.fields.get("datasets") or []:
        dataset = item.get("dataset") or {}
        name = req_str(dataset, "name")
        tags[f"mlflow.inputs.{name}"] = json.dumps(dataset, sort_keys=True)
    if tags:
        with acting(c.identity.name, c.source):
            store.runs.set_tags(run_id, tags)
    return {}


@router.get(f"{_P}/metrics/get-history")
def get_metric_history(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Every point of one metric of a run, by step."""
    authorize(c.identity, "read")
    run_id = req_str(c.fields, "run_id", "run_uuid")
    _get_run(store, run_id)
    key = req_str(c.fields, "metric_key")
    points = [
        {"key": p.key, "value": _num(p.value), "timestamp": p.timestamp, "step": p.step}
        for p in store.runs.metric_history(run_id, key)
    ]
    fields = {**c.fields, "max_results": c.fields.get("max_results") or MAX_RESULTS}
    return page(points, fields, "metrics")


@router.post(f"{_P}/runs/search")
def search_runs(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Runs of the given experiments matching a filter, in ``order_by`` order."""
    authorize(c.identity, "read")
    wanted = set(as_list(c.fields.get("experiment_ids")))
    clauses = parse_filter(opt_str(c.fields, "filter"))
    view = c.fields.get("run_view_type")
    found = [
        r
        for r in store.runs.list(limit=_SEARCH_SCAN)
        if r.kind != LOGGED_MODEL_KIND
        and (not wanted or _experiment_of(r) in wanted)
        and _view_ok(r.tags.get(_DELETED_TAG) == "deleted", view)
        and matches(clauses, _lookup(r))
    ]
    order = parse_order_by(as_list(c.fields.get("order_by")))
    found = sort_rows(found, [*order, ("attributes", "start_time", False)], _lookup)
    return page([run_json(r) for r in found], c.fields, "runs")


# ---------------------------------------------------------------- logged models (MLflow 3)


def _get_logged(store: Store, model_id: str) -> RunInfo:
    try:
        run = store.runs.get(model_run_id(model_id))
    except NotFoundError:
        run = None
    if run is None or run.kind != LOGGED_MODEL_KIND or f"m-{run.id}" != model_id:
        raise NotFoundError(f"Logged model with ID '{model_id}' not found.")
    return run


def logged_model_json(run: RunInfo) -> dict[str, Any]:
    """MLflow's ``LoggedModel`` message for an opsloop run of kind ``logged-model``."""
    info: dict[str, Any] = {
        "model_id": f"m-{run.id}",
        "experiment_id": _experiment_of(run),
        "name": run.name,
        "creation_timestamp_ms": ms(run.started_at),
        "last_updated_timestamp_ms": ms(run.ended_at or run.started_at),
        "artifact_uri": run_artifact_root(run),
        "status": _MODEL_STATUS.get(run.status, "LOGGED_MODEL_PENDING"),
        "tags": _visible(run.tags),
    }
    if run.parent_id:
        info["source_run_id"] = run.parent_id
    if run.tags.get(_MODEL_TYPE_TAG):
        info["model_type"] = run.tags[_MODEL_TYPE_TAG]
    if run.tags.get(_STATUS_MESSAGE_TAG):
        info["status_message"] = run.tags[_STATUS_MESSAGE_TAG]
    return {
        "info": info,
        "data": {
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "metrics": [
                {"key": k, "value": _num(v), "timestamp": 0, "step": 0}
                for k, v in run.metrics.items()
            ],
        },
    }


@router.post(f"{_P}/logged-models")
def create_logged_model(
    c: Call = Depends(call),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> dict[str, Any]:
    """Start a logged model (PENDING until the client finalizes it)."""
    authorize(c.identity, "log")
    store = project.store
    exp = experiments.get(store, req_str(c.fields, "experiment_id"))
    source_run = opt_str(c.fields, "source_run_id")
    if source_run is not None:
        _get_run(store, source_run)
    tags = _pairs(c.fields.get("tags"), "tag")
    tags[EXPERIMENT_TAG] = exp.id
    model_type = opt_str(c.fields, "model_type")
    if model_type:
        tags[_MODEL_TYPE_TAG] = model_type
    name = opt_str(c.fields, "name") or "model"
    with acting(c.identity.name, c.source):
        run = store.runs.create(
            name,
            kind=LOGGED_MODEL_KIND,
            parent_id=source_run,
            project=project.name,
            params=_pairs(c.fields.get("params"), "param"),
            tags=tags,
        )
    return {"model": logged_model_json(run)}


@router.get(f"{_P}/logged-models/{{model_id}}")
def get_logged_model(
    model_id: str,
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One logged model."""
    authorize(c.identity, "read")
    return {"model": logged_model_json(_get_logged(store, model_id))}


@router.patch(f"{_P}/logged-models/{{model_id}}")
def finalize_logged_model(
    model_id: str,
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Mark a logged model READY (its artifacts are uploaded) or UPLOAD_FAILED."""
    authorize(c.identity, "log")
    run = _get_logged(store, model_id)
    status = req_str(c.fields, "status")
    ends = {"LOGGED_MODEL_READY": "finished", "LOGGED_MODEL_UPLOAD_FAILED": "failed"}
    if status not in ends:
        raise MlflowError(f"a logged model is finalized READY or UPLOAD_FAILED, not {status!r}")
    with acting(c.identity.name, c.source):
        store.runs.finish(run.id, ends[status])
    return {"model": logged_model_json(_get_logged(store, model_id))}


@router.patch(f"{_P}/logged-models/{{model_id}}/tags")
def set_logged_model_tags(
    model_id: str,
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Set tags of a logged model."""
    authorize(c.identity, "log")
    run = _get_logged(store, model_id)
    tags = _pairs(c.fields.get("tags"), "tag")
    if any(k.startswith(_HIDDEN) for k in tags):
        raise MlflowError(f"tag keys starting with '{_HIDDEN}' are reserved")
    with acting(c.identity.name, c.source):
        store.runs.set_tags(run.id, tags)
    return {}


@router.post(f"{_P}/logged-models/{{model_id}}/params")
def log_logged_model_params(
    model_id: str,
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Record params of a logged model."""
    authorize(c.identity, "log")
    run = _get_logged(store, model_id)
    with acting(c.identity.name, c.source):
        store.runs.log_params(run.id, _pairs(c.fields.get("params"), "param"))
    return {}


@router.delete(f"{_P}/logged-models/{{model_id}}")
def delete_logged_model(
    model_id: str,
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Mark a logged model deleted (kept, as MLflow keeps it)."""
    authorize(c.identity, "log")
    run = _get_logged(store, model_id)
    with acting(c.identity.name, c.source):
        store.runs.set_tags(run.id, {_DELETED_TAG: "deleted"})
    return {}


@router.post(f"{_P}/logged-models/search")
def search_logged_models(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Logged models of the given experiments matching a filter."""
    authorize(c.identity, "read")
    wanted = set(as_list(c.fields.get("experiment_ids")))
    clauses = parse_filter(opt_str(c.fields, "filter"))

    def lookup(run: RunInfo) -> Any:
        info = logged_model_json(run)["info"]

        def value(entity: str, key: str) -> Any:
            if entity == "metrics":
                return run.metrics.get(key)
            if entity == "params":
                return run.params.get(key)
            if entity == "tags":
                return run.tags.get(key)
            return info.get(key)

        return value

    found = [
        r
        for r in store.runs.list(kind=LOGGED_MODEL_KIND, limit=_SEARCH_SCAN)
        if (not wanted or _experiment_of(r) in wanted)
        and r.tags.get(_DELETED_TAG) != "deleted"
        and matches(clauses, lookup(r))
    ]
    order = [
        (
            "metrics" if str(o.get("field_name", "")).startswith("metrics.") else "attributes",
            str(o.get("field_name", "")).removeprefix("metrics."),
            bool(o.get("ascending", True)),
        )
        for o in c.fields.get("order_by") or []
    ]
    found = sort_rows(found, [*order, ("attributes", "creation_timestamp_ms", False)], lookup)
    return page([logged_model_json(r) for r in found], c.fields, "models")
