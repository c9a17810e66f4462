"""MLflow experiments over opsloop's store.

opsloop has no experiment table: a run belongs to an MLflow experiment by its tag
``opsloop.mlflow.experiment_id`` (:data:`EXPERIMENT_TAG`), and an experiment itself (its name,
tags, whether it is deleted) is what the audit log says of it: the events of object type
``mlflow.experiment`` (created, renamed, deleted, restored, tag set, tag deleted), folded in
order. An experiment created and never used therefore survives a restart, and every change to
one is audited like any other write. The experiment ``0`` ("Default") always exists, as in
MLflow; opsloop's own runs, which carry no experiment tag, belong to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.api.mlflow.protocol import MlflowError, ms
from opsloop.errors import AlreadyExistsError, NotFoundError

if TYPE_CHECKING:
    from opsloop.store import Store
    from opsloop.store.types import EventInfo

__all__ = [
    "DEFAULT_ID",
    "EXPERIMENT_TAG",
    "Experiment",
    "all_experiments",
    "change",
    "create",
    "get",
    "get_by_name",
]

DEFAULT_ID = "0"
EXPERIMENT_TAG = "opsloop.mlflow.experiment_id"
_OBJECT = "mlflow.experiment"
_HISTORY_LIMIT = 1_000_000


@dataclass
class Experiment:
    """An experiment as its events leave it."""

    id: str
    name: str
    created_ms: int
    updated_ms: int
    deleted: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """MLflow's ``Experiment`` message."""
        return {
            "experiment_id": self.id,
            "name": self.name,
            "artifact_location": f"mlflow-artifacts:/{self.id}",
            "lifecycle_stage": "deleted" if self.deleted else "active",
            "creation_time": self.created_ms,
            "last_update_time": self.updated_ms,
            "tags": [{"key": k, "value": v} for k, v in self.tags.items()],
        }


def _fold(events: list[EventInfo]) -> dict[str, Experiment]:
    found = {DEFAULT_ID: Experiment(DEFAULT_ID, "Default", 0, 0)}
    for e in events:
        when = ms(e.time) or 0
        d = e.details
        if e.kind == "mlflow.experiment.created":
            found[e.object_id] = Experiment(
                e.object_id, str(d["name"]), when, when, tags=dict(d.get("tags") or {})
            )
            continue
        exp = found.get(e.object_id)
        if exp is None:
            continue
        exp.updated_ms = when
        if e.kind == "mlflow.experiment.renamed":
            exp.name = str(d["name"])
        elif e.kind == "mlflow.experiment.deleted":
            exp.deleted = True
        elif e.kind == "mlflow.experiment.restored":
            exp.deleted = False
        elif e.kind == "mlflow.experiment.tag_set":
            exp.tags[str(d["key"])] = str(d["value"])
        elif e.kind == "mlflow.experiment.tag_deleted":
            exp.tags.pop(str(d["key"]), None)
    return found


def all_experiments(store: Store) -> dict[str, Experiment]:
    """Every experiment, deleted ones included, by id in creation order."""
    return _fold(store.events.list(object_type=_OBJECT, limit=_HISTORY_LIMIT))


def get(store: Store, experiment_id: str) -> Experiment:
    """One experiment; NotFoundError (RESOURCE_DOES_NOT_EXIST) if there is none."""
    found = all_experiments(store).get(str(experiment_id))
    if found is None:
        raise NotFoundError(f"No Experiment with id={experiment_id} exists")
    return found


def get_by_name(store: Store, name: str) -> Experiment:
    """The experiment named ``name`` (an active one before a deleted one)."""
    named = [e for e in all_experiments(store).values() if e.name == name]
    if not named:
        raise NotFoundError(f"Could not find experiment with name '{name}'")
    return sorted(named, key=lambda e: e.deleted)[0]


def create(store: Store, name: str, tags: dict[str, str]) -> Experiment:
    """A new experiment; AlreadyExistsError if the name is taken (deleted ones included)."""
    if not name.strip():
        raise MlflowError("experiment name must not be empty")
    if any(e.name == name for e in all_experiments(store).values()):
        raise AlreadyExistsError(f"Experiment '{name}' already exists.")
    # A numeric id, as MLflow's own stores give: the client and its UI sort by it.
    exp_id = str(uuid.uuid4().int % 10**18)
    store.events.emit("mlflow.experiment.created", _OBJECT, exp_id, {"name": name, "tags": tags})
    return get(store, exp_id)


def change(store: Store, experiment_id: str, kind: str, details: dict[str, Any]) -> None:
    """Record a change (``renamed``, ``deleted``, ``restored``, ``tag_set``, ``tag_deleted``)."""
    exp = get(store, experiment_id)
    if exp.id == DEFAULT_ID and kind in ("deleted", "renamed"):
        raise MlflowError("the Default experiment (id 0) cannot be deleted or renamed")
    if kind == "renamed":
        name = str(details["name"])
        if any(e.name == name and e.id != exp.id for e in all_experiments(store).values()):
            raise AlreadyExistsError(f"Experiment '{name}' already exists.")
    store.events.emit(f"mlflow.experiment.{kind}", _OBJECT, exp.id, details)
