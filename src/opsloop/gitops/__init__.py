"""GitOps: the desired state of every deployment lives in Git; a reconciler makes the running
state match it; rollback is a revert.

Documents (``deploy/*.yaml``, ``apiVersion: opsloop/v1``, ``kind: Deployment``) are read at a
Git revision; :func:`sync` applies them to a runtime (``local`` server processes, or
``kubernetes`` manifests); :func:`promote`, :func:`set_traffic` and :func:`rollback` write
new revisions as commits.
"""

from __future__ import annotations

from opsloop.gitops.changes import (
    ChangeResult,
    document_history,
    find_free_port,
    parse_weights,
    promote,
    resize,
    rollback,
    set_traffic,
)
from opsloop.gitops.document import (
    DeploymentDocument,
    DeploymentSpec,
    SyncPolicy,
    TrafficEntry,
    dump_document,
    parse_document,
)
from opsloop.gitops.loader import (
    DesiredState,
    DocumentProblem,
    LoadedDocument,
    load_desired_state,
    resolve_spec,
)
from opsloop.gitops.reconciler import (
    DEFAULT_FOLDER,
    DeploymentOutcome,
    Reconciler,
    SyncResult,
    compute_diff,
    run_forever,
    status,
    sync,
)
from opsloop.gitops.render import render_deployments
from opsloop.gitops.repo import CommitInfo, GitRepo
from opsloop.gitops.runtime import Runtime, available_runtimes, open_runtime, register_runtime
from opsloop.gitops.types import (
    Health,
    HealthStatus,
    LiveDeployment,
    ObservedRouting,
    RuntimeSpec,
    SyncStatus,
)
from opsloop.store.types import DeploymentRecord, SyncHistoryEntry

__all__ = [
    "DEFAULT_FOLDER",
    "ChangeResult",
    "CommitInfo",
    "DeploymentDocument",
    "DeploymentOutcome",
    "DeploymentRecord",
    "DeploymentSpec",
    "DesiredState",
    "DocumentProblem",
    "GitRepo",
    "Health",
    "HealthStatus",
    "LiveDeployment",
    "LoadedDocument",
    "ObservedRouting",
    "Reconciler",
    "Runtime",
    "RuntimeSpec",
    "SyncHistoryEntry",
    "SyncPolicy",
    "SyncResult",
    "SyncStatus",
    "TrafficEntry",
    "available_runtimes",
    "compute_diff",
    "document_history",
    "dump_document",
    "find_free_port",
    "load_desired_state",
    "open_runtime",
    "parse_document",
    "parse_weights",
    "promote",
    "register_runtime",
    "render_deployments",
    "resize",
    "resolve_spec",
    "rollback",
    "run_forever",
    "set_traffic",
    "status",
    "sync",
]
