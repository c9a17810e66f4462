"""Plain read models the store returns: detached from any session, safe to pass around."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class RunInfo(_Info):
    """A run with its parameters, tags and latest metric values.

    ``host`` and ``pid`` name the process that writes the run; ``heartbeat_at`` is when it last
    said it is alive (None for runs written without a heartbeat).
    """

    id: str
    name: str
    kind: str
    parent_id: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    user: str
    project: str
    git_commit: str | None
    source: str | None
    error: str | None
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, None while running."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class MetricPoint(_Info):
    """One point of a metric series."""

    key: str
    value: float
    step: int
    timestamp: int


class ArtifactInfo(_Info):
    """An artifact logged by a run."""

    run_id: str
    path: str
    digest: str
    size: int
    kind: str
    created_at: datetime


class StepRunInfo(_Info):
    """One execution (or cache hit) of a pipeline step."""

    id: int
    run_id: str
    name: str
    status: str
    cache_key: str | None
    cached_from: int | None
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    cpu_seconds: float | None
    peak_memory_bytes: int | None
    params: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    logs: str | None
    error: str | None
    traceback: str | None


class DatasetVersionInfo(_Info):
    """A recorded data set version."""

    digest: str
    name: str
    source: str
    row_count: int
    schema_: dict[str, Any] = Field(alias="schema_")
    details: dict[str, Any]
    created_at: datetime


class ModelVersionInfo(_Info):
    """One version of a registered model."""

    model_name: str
    version: int
    artifact_digest: str
    run_id: str | None
    dataset_digest: str | None
    source: str
    status: str
    description: str
    details: dict[str, Any]
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.model_name}/{self.version}"


class RegisteredModelInfo(_Info):
    """A registered model with its aliases and latest version number."""

    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class EventInfo(_Info):
    """One audit event: who (``actor``) did what (``kind``, ``details``, which carry
    ``before`` and ``after`` for a change of state) to which object, from where (``source``)
    and when; ``seq``, ``prev_hash`` and ``hash`` place it in the audit chain."""

    id: int
    time: datetime
    actor: str
    kind: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    source: str | None = None
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


class AuditVerification(_Info):
    """What verifying the audit chain found.

    ``entries`` were checked, up to the head at position ``head_seq`` with hash ``head_hash``.
    When the chain is broken, ``reason`` says how (``edited``, ``missing``, ``inserted``,
    ``reordered``, ``truncated``, or ``rewritten`` when it no longer matches a head recorded
    earlier), ``entry_id`` and ``position`` name the entry where it breaks (None when the
    entry is gone, as for ``truncated`` with no entry left), and ``message`` says it in words.
    """

    entries: int
    head_seq: int
    head_hash: str | None
    reason: str | None = None
    entry_id: int | None = None
    position: int | None = None
    message: str = ""

    @property
    def intact(self) -> bool:
        """Whether every entry is as it was written, in order, none missing or added."""
        return self.reason is None


class PredictionInfo(_Info):
    """One logged request.

    ``rows`` is the request's row count (None on rows logged before it was recorded) and
    ``chunk`` the digest of the Parquet chunk holding its rows when they were too many to
    keep inline; ``outputs["log"]`` then says how it was logged (``reference``, ``sample``
    or ``drop``). ``ids`` are the columns the request sent beyond the model's signature
    (ids, timestamps …), kept so that labels can be joined by them.
    """

    id: int
    request_id: str
    deployment: str
    model_name: str
    model_version: str
    time: datetime
    latency_ms: float
    shadow: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    rows: int | None = None
    chunk: str | None = None
    ids: dict[str, Any] | None = None

    @property
    def row_count(self) -> int:
        """The request's rows: recorded, else the number of outputs kept inline."""
        if self.rows is not None:
            return self.rows
        values = self.outputs.get("values")
        return len(values) if isinstance(values, list) else 0


class FeedbackInfo(_Info):
    """One ground-truth label for an earlier request."""

    id: int
    request_id: str
    deployment: str
    time: datetime
    label: dict[str, Any]


class SeriesPointInfo(_Info):
    """One point of a monitored metric series."""

    name: str
    labels: dict[str, str]
    time: datetime
    value: float


class FeedbackTarget(NamedTuple):
    """A request a label is sent for, as the store knows it (see
    :meth:`~opsloop.store.repos.predictions.PredictionRepository.feedback_targets`); ``model``
    and ``version`` are None for a request that has a label but no logged prediction."""

    model: str | None
    version: str | None
    rows: int
    labelled: bool


@dataclass
class DeletedPredictions:
    """What :meth:`~opsloop.store.repos.predictions.PredictionRepository.delete` deleted."""

    predictions: int = 0
    rows: int = 0
    feedback: int = 0
    chunks: set[str] = field(default_factory=set)


class DeploymentRecord(_Info):
    """A deployment as the reconciler last saw it."""

    name: str
    revision: str | None
    desired: dict[str, Any]
    live: dict[str, Any]
    sync_status: str
    health_status: str
    reason: str
    created_at: datetime
    updated_at: datetime


class SyncHistoryEntry(_Info):
    """One sync of one deployment."""

    id: int
    deployment: str
    revision: str | None
    started_at: datetime
    finished_at: datetime | None
    result: str
    diff: dict[str, Any]
    details: dict[str, Any]


class AlertInfo(_Info):
    """An alert as stored: one row per firing episode of a fingerprint."""

    id: int
    fingerprint: str
    source: str
    name: str
    severity: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    last_seen_at: datetime
    ends_at: datetime | None
    count: int
    incident_id: int | None
    details: dict[str, Any]


class IncidentInfo(_Info):
    """An incident as stored.

    ``root_causes`` holds the ranked candidates as dicts (see
    :class:`~opsloop.aiops.correlation.RootCause`); ``details`` holds ``alert_count``,
    ``categories``, ``subjects`` (the lineage nodes alerted on) and ``deployments``.
    """

    id: int
    title: str
    kind: str
    status: str
    severity: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    root_causes: list[dict[str, Any]]
    details: dict[str, Any]

    @property
    def root_cause(self) -> str | None:
        """The first-ranked root-cause node, if any."""
        return str(self.root_causes[0]["node"]) if self.root_causes else None

    @property
    def deployments(self) -> list[str]:
        """Deployments the incident's alerts are on."""
        return [str(d) for d in self.details.get("deployments", [])]

    @property
    def models(self) -> list[str]:
        """Registered models the incident's alerts are on."""
        return [str(d) for d in self.details.get("models", [])]

    @property
    def alert_count(self) -> int:
        """How many alerts the incident holds."""
        return int(self.details.get("alert_count", 0))


class ActionInfo(_Info):
    """A remediation action of an incident, as stored."""

    id: int
    incident_id: int
    action: str
    status: str
    policy: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    approved_by: str | None
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None


class GrantInfo(_Info):
    """A role an identity holds on one model or one deployment."""

    role: str
    resource_type: str
    resource: str


class IdentityInfo(_Info):
    """A user or a service account, with its roles on everything and its grants."""

    id: int
    name: str
    kind: str
    roles: list[str]
    disabled: bool
    created_at: datetime
    grants: list[GrantInfo] = Field(default_factory=list)


class TokenInfo(_Info):
    """An API token as stored: never the token, only the start of it shown for recognition.

    ``identity`` is the name of the identity the token authenticates.
    """

    id: int
    identity: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class IssuedToken:
    """A newly issued API token: the only time the token itself exists outside its holder.

    Its ``repr`` leaves the token out, so a log line or a traceback does not show it.
    """

    info: TokenInfo
    token: str = field(repr=False)


USAGE_DIMENSIONS = (
    "project",
    "team",
    "cost_centre",
    "run",
    "step",
    "trial",
    "model",
    "version",
    "deployment",
    "environment",
)
"""What a usage record is attributed to (FinOps): each is a string, empty when it does not
apply."""

USAGE_QUANTITIES = (
    "wall_s",
    "cpu_s",
    "memory_gb_s",
    "reserved_cpu_s",
    "reserved_memory_gb_s",
    "requests",
    "storage_gb_s",
)
"""What a usage record measures: wall seconds, CPU seconds used, GB of memory held times
seconds, vCPU-seconds and GB-seconds reserved, requests served, GB stored times seconds."""


@dataclass(frozen=True)
class UsageRecord:
    """One measurement of usage to meter (see :class:`UsageRepository.add`).

    Attributes:
        time: When the work happened (its hour is the row it adds to).
        kind: What consumed: ``step``, ``trial``, ``replica``, ``storage``, ``controller`` …
        dimensions: Values of :data:`USAGE_DIMENSIONS` (others are an error).
        quantities: Values of :data:`USAGE_QUANTITIES` (others are an error).
    """

    time: datetime
    kind: str
    dimensions: dict[str, str] = field(default_factory=dict)
    quantities: dict[str, float] = field(default_factory=dict)


class UsageInfo(_Info):
    """Metered usage of one hour, kind and set of dimensions (the sum of its records)."""

    hour: datetime
    kind: str
    project: str
    team: str
    cost_centre: str
    run: str
    step: str
    trial: str
    model: str
    version: str
    deployment: str
    environment: str
    wall_s: float
    cpu_s: float
    memory_gb_s: float
    reserved_cpu_s: float
    reserved_memory_gb_s: float
    requests: float
    storage_gb_s: float
    count: int

    @property
    def dimensions(self) -> dict[str, str]:
        """The non-empty dimensions."""
        return {d: getattr(self, d) for d in USAGE_DIMENSIONS if getattr(self, d)}
