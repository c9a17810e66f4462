"""MLflow's model registry API over ``store.models``.

A version registered through MLflow is an opsloop model version: its artifact is the folder
the MLflow source names (a logged model ``models:/m-…``, a run's ``runs:/<run>/<path>`` or an
``mlflow-artifacts:/`` URI of this server), stored as a folder manifest of the files already in
the artifact store; its ``source`` is MLflow's source and ``details.origin`` is ``"mlflow"``.
It is unsigned and unscanned, so opsloop's admission policy treats it as such. Sources outside
this server's artifact store are refused: opsloop's registry holds the bytes it serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from opsloop.api import deps
from opsloop.api.mlflow.artifacts import parse_artifact_path
from opsloop.api.mlflow.protocol import (
    Call,
    MlflowError,
    MlflowRoute,
    as_list,
    call,
    ms,
    opt_str,
    page,
    req_str,
)
from opsloop.api.mlflow.search import Lookup, matches, parse_filter, parse_order_by, sort_rows
from opsloop.api.mlflow.tracking import LOGGED_MODEL_KIND, model_run_id, run_artifact_root
from opsloop.artifacts import Manifest, ManifestEntry
from opsloop.errors import NotFoundError
from opsloop.lifecycle.aliases import move_alias
from opsloop.registry.signing import attest_stored_version
from opsloop.secops.access import Identity, authorize
from opsloop.secops.policy import alias_action
from opsloop.spec.schema import AccessSection
from opsloop.store.acting import acting

if TYPE_CHECKING:
    from opsloop.context import Project
    from opsloop.store import Store
    from opsloop.store.types import ModelVersionInfo, RegisteredModelInfo

__all__ = ["router"]

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)
_P = "/api/2.0/mlflow"

_STATUS = {"ready": "READY", "pending": "PENDING_REGISTRATION", "failed": "FAILED_REGISTRATION"}


def _version_number(fields: dict[str, Any]) -> int:
    raw = req_str(fields, "version")
    try:
        return int(raw)
    except ValueError:
        raise MlflowError(f"model version must be a number, got {raw!r}") from None


def version_json(v: ModelVersionInfo) -> dict[str, Any]:
    """MLflow's ``ModelVersion`` message."""
    mlflow = v.details.get("mlflow") or {}
    out: dict[str, Any] = {
        "name": v.model_name,
        "version": str(v.version),
        "creation_timestamp": ms(v.created_at),
        "last_updated_timestamp": ms(v.created_at),
        "user_id": str(mlflow.get("user_id", "")),
        "current_stage": str(mlflow.get("stage", "None")),
        "description": v.description,
        "source": v.source,
        "status": _STATUS.get(v.status.lower(), "READY"),
        "tags": [{"key": k, "value": val} for k, val in v.tags.items()],
        "aliases": list(v.aliases),
    }
    if v.run_id:
        out["run_id"] = v.run_id
    if mlflow.get("model_id"):
        out["model_id"] = mlflow["model_id"]
    if mlflow.get("run_link"):
        out["run_link"] = mlflow["run_link"]
    return out


def model_json(m: RegisteredModelInfo, latest: list[ModelVersionInfo]) -> dict[str, Any]:
    """MLflow's ``RegisteredModel`` message."""
    return {
        "name": m.name,
        "creation_timestamp": ms(m.created_at),
        "last_updated_timestamp": ms(m.updated_at),
        "description": m.description,
        "latest_versions": [version_json(v) for v in latest],
        "tags": [{"key": k, "value": v} for k, v in m.tags.items()],
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(m.aliases.items())],
    }


def _model(store: Store, name: str) -> dict[str, Any]:
    model = store.models.get(name)
    versions = store.models.list_versions(name)
    return model_json(model, versions[:1])


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or [] if t.get("key")}


# ---------------------------------------------------------------- registered models


@router.post(f"{_P}/registered-models/create")
def create_registered_model(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Create a registered model (RESOURCE_ALREADY_EXISTS if the name is taken)."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    with acting(c.identity.name, c.source):
        store.models.create(
            name,
            description=str(c.fields.get("description") or ""),
            tags=_tags(c.fields.get("tags")),
        )
    return {"registered_model": _model(store, name)}


@router.get(f"{_P}/registered-models/get")
def get_registered_model(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One registered model with its latest version and aliases."""
    authorize(c.identity, "read")
    return {"registered_model": _model(store, req_str(c.fields, "name"))}


@router.api_route(f"{_P}/registered-models/search", methods=["GET", "POST"])
def search_registered_models(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Registered models matching a filter on ``name`` or ``tags.<key>``."""
    authorize(c.identity, "read")
    clauses = parse_filter(opt_str(c.fields, "filter"))

    def lookup(m: RegisteredModelInfo) -> Lookup:
        return lambda e, k: m.tags.get(k) if e == "tags" else getattr(m, k, None)

    found = [m for m in store.models.list() if matches(clauses, lookup(m))]
    order = parse_order_by(as_list(c.fields.get("order_by"))) or [("attributes", "name", True)]
    rows = [_model(store, m.name) for m in found]
    rows = sort_rows(rows, order, lambda r: lambda e, k: r.get(k))
    return page(rows, c.fields, "registered_models")


@router.patch(f"{_P}/registered-models/update")
def update_registered_model(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Change a registered model's description."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    with acting(c.identity.name, c.source):
        store.models.update(name, description=str(c.fields.get("description") or ""))
    return {"registered_model": _model(store, name)}


@router.post(f"{_P}/registered-models/set-tag")
def set_registered_model_tag(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Set one tag of a registered model."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    with acting(c.identity.name, c.source):
        store.models.update(name, tags={req_str(c.fields, "key"): str(c.fields.get("value", ""))})
    return {}


@router.post(f"{_P}/registered-models/get-latest-versions")
@router.get(f"{_P}/registered-models/get-latest-versions")
def get_latest_versions(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """The newest version of a model (MLflow's stages are not used: one per stage "None")."""
    authorize(c.identity, "read")
    versions = store.models.list_versions(req_str(c.fields, "name"))
    return {"model_versions": [version_json(v) for v in versions[:1]]}


# ---------------------------------------------------------------- aliases


def _authorize_alias(identity: Identity, policy: AccessSection, name: str, alias: str) -> None:
    authorize(identity, alias_action(alias, policy), resource_type="model", resource=name)


@router.post(f"{_P}/registered-models/alias")
def set_alias(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
    policy: AccessSection = Depends(deps.access_policy),  # noqa: B008
) -> dict[str, Any]:
    """Point an alias at a version (a protected alias needs the deployer role). The project's
    admission policy applies as to any alias move; MLflow's clients know no rollbacks, so an
    alias may move back to an older version."""
    name, alias = req_str(c.fields, "name"), req_str(c.fields, "alias")
    _authorize_alias(c.identity, policy, name, alias)
    with acting(c.identity.name, c.source):
        move_alias(store, name, alias, _version_number(c.fields), allow_rollback=True)
    return {}


@router.delete(f"{_P}/registered-models/alias")
def delete_alias(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
    policy: AccessSection = Depends(deps.access_policy),  # noqa: B008
) -> dict[str, Any]:
    """Remove an alias."""
    name, alias = req_str(c.fields, "name"), req_str(c.fields, "alias")
    _authorize_alias(c.identity, policy, name, alias)
    with acting(c.identity.name, c.source):
        store.models.delete_alias(name, alias)
    return {}


@router.get(f"{_P}/registered-models/alias")
def get_version_by_alias(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """The version an alias points at."""
    authorize(c.identity, "read")
    version = store.models.get_version_by_alias(
        req_str(c.fields, "name"), req_str(c.fields, "alias")
    )
    return {"model_version": version_json(version)}


# ---------------------------------------------------------------- model versions


def _resolve_source(source: str, model_id: str | None) -> tuple[str, str, str | None]:
    """The opsloop run holding a source's files, the folder below its artifact root, and the
    logged model's id when the source is one."""
    if model_id:
        return model_run_id(model_id), "", model_id
    if source.startswith("models:/m-"):
        mid = source.removeprefix("models:/").strip("/").split("/")[0]
        return model_run_id(mid), "", mid
    if source.startswith("runs:/"):
        run_id, _, rel = source.removeprefix("runs:/").partition("/")
        return run_id, rel.strip("/"), None
    if source.startswith("mlflow-artifacts:"):
        rest = source.removeprefix("mlflow-artifacts:")
        if rest.startswith("//"):  # mlflow-artifacts://host:port/<path>
            rest = rest[2:].partition("/")[2]
        where = parse_artifact_path(rest)
        return where.run_id, where.rel, f"m-{where.run_id}" if where.logged_model else None
    raise MlflowError(
        f"cannot register {source!r}: the source must be a logged model (models:/m-...), a run"
        " (runs:/<run id>/<path>) or an mlflow-artifacts:/ URI of this server, whose artifact"
        " store holds the files"
    )


def _folder_digest(project: Project, run_id: str, rel: str) -> str:
    """A folder manifest of the run's files below ``rel``, stored; its digest."""
    prefix = f"{rel}/" if rel else ""
    files = {
        a.path[len(prefix) :]: ManifestEntry(digest=a.digest, size=a.size)
        for a in project.store.runs.list_artifacts(run_id)
        if a.path.startswith(prefix)
    }
    if not files:
        raise MlflowError(
            f"run {run_id} has no artifacts under '{rel or '/'}': nothing to register"
        )
    return project.artifacts.put_bytes(Manifest(files=files).model_dump_json().encode())


@router.post(f"{_P}/model-versions/create")
def create_model_version(
    c: Call = Depends(call),  # noqa: B008
    project: Project = Depends(deps.project),  # noqa: B008
) -> dict[str, Any]:
    """Register the next version of a model from an MLflow source (READY at once)."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    store = project.store
    source = req_str(c.fields, "source")
    owner, rel, model_id = _resolve_source(source, opt_str(c.fields, "model_id"))
    run = store.runs.get(owner)
    if run.id != owner:
        raise NotFoundError(f"Run '{owner}' not found")
    run_id = opt_str(c.fields, "run_id") or (run.parent_id if model_id else run.id)
    if run.kind == LOGGED_MODEL_KIND and model_id is None:
        model_id = f"m-{run.id}"
    digest = _folder_digest(project, owner, rel)
    # Scanned and signed here, so the admission policy judges an MLflow version like any other
    # (a pickle that imports os.system fails its scan and is never admitted).
    details = {
        **attest_stored_version(project, digest),
        "origin": "mlflow",
        "mlflow": {
            "source": source,
            "download_uri": run_artifact_root(run) + (f"/{rel}" if rel else ""),
            "model_id": model_id,
            "run_link": opt_str(c.fields, "run_link"),
            "user_id": c.identity.name,
        },
    }
    with acting(c.identity.name, c.source):
        version = store.models.create_version(
            name,
            artifact_digest=digest,
            run_id=run_id,
            source=source,
            description=str(c.fields.get("description") or ""),
            details=details,
            tags=_tags(c.fields.get("tags")),
        )
    return {"model_version": version_json(version)}


@router.get(f"{_P}/model-versions/get")
def get_model_version(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """One version."""
    authorize(c.identity, "read")
    version = store.models.get_version(req_str(c.fields, "name"), _version_number(c.fields))
    return {"model_version": version_json(version)}


@router.patch(f"{_P}/model-versions/update")
def update_model_version(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Change a version's description."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    with acting(c.identity.name, c.source):
        version = store.models.update_version(
            name, _version_number(c.fields), description=str(c.fields.get("description") or "")
        )
    return {"model_version": version_json(version)}


@router.post(f"{_P}/model-versions/set-tag")
def set_model_version_tag(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Set one tag of a version."""
    name = req_str(c.fields, "name")
    authorize(c.identity, "register", resource_type="model", resource=name)
    with acting(c.identity.name, c.source):
        store.models.update_version(
            name,
            _version_number(c.fields),
            tags={req_str(c.fields, "key"): str(c.fields.get("value", ""))},
        )
    return {}


@router.get(f"{_P}/model-versions/get-download-uri")
def get_download_uri(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Where MLflow's client downloads a version's files from (this server's artifact proxy)."""
    authorize(c.identity, "read")
    version = store.models.get_version(req_str(c.fields, "name"), _version_number(c.fields))
    uri = (version.details.get("mlflow") or {}).get("download_uri")
    if not uri:
        raise MlflowError(
            f"version {version.version} of '{version.model_name}' was registered by opsloop, not"
            " through MLflow: load it with opsloop (opsloop.load_model)",
            "INVALID_STATE",
        )
    return {"artifact_uri": uri}


@router.get(f"{_P}/model-versions/search")
@router.post(f"{_P}/model-versions/search")
def search_model_versions(
    c: Call = Depends(call),  # noqa: B008
    store: Store = Depends(deps.store),  # noqa: B008
) -> dict[str, Any]:
    """Versions matching a filter on ``name``, ``run_id``, ``source`` or ``tags.<key>``."""
    authorize(c.identity, "read")
    clauses = parse_filter(opt_str(c.fields, "filter"))
    rows = []
    for v in store.models.all_versions():
        row = version_json(v)

        def value(e: str, k: str, row: dict[str, Any] = row, v: Any = v) -> Any:
            if e == "tags":
                return v.tags.get(k)
            return row.get(k)

        if matches(clauses, value):
            rows.append(row)
    order = parse_order_by(as_list(c.fields.get("order_by"))) or [
        ("attributes", "name", True),
        ("attributes", "version_number", False),
    ]
    for row in rows:
        row["version_number"] = int(row["version"])
    rows = sort_rows(rows, order, lambda r: lambda e, k: r.get(k))
    for row in rows:
        del row["version_number"]
    return page(rows, c.fields, "model_versions")
