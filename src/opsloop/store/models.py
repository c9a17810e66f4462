"""Typed ORM models of the metadata store.

The schema is owned by the Alembic migrations in ``opsloop/store/migrations``; these classes
must match them (a test compares the two).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class NaNFloat(TypeDecorator[float]):
    """A float that holds NaN as NULL, and reads NULL back as NaN, on every backend.

    SQLite has no NaN (its driver binds one as NULL), and PostgreSQL sorts NaN above every
    number, so that a NaN would win a ``MAX``; NULL is the same on both, and aggregates skip it.
    Infinities are stored as they are.
    """

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> float | None:
        return None if value is None or math.isnan(value) else value

    def process_result_value(self, value: float | None, dialect: Dialect) -> float:
        return math.nan if value is None else value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


JSONDict = dict[str, Any]


class Base(DeclarativeBase):
    """Base of every ORM class."""

    type_annotation_map = {datetime: UTCDateTime, JSONDict: JSON}


class Run(Base):
    """A tracked run: a user's run, a pipeline run, a step or a tuning trial."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16), default="run")
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    user: Mapped[str] = mapped_column(String(128), default="")
    project: Mapped[str] = mapped_column(String(256), default="")
    git_commit: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    # The process writing the run (migration 0003): a run whose process is gone is killed.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    pid_started: Mapped[float | None] = mapped_column(Float)
    heartbeat_at: Mapped[datetime | None]


class Param(Base):
    """One parameter of a run; a run's parameter never changes once logged."""

    __tablename__ = "params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(Base):
    """A free-form tag of a run."""

    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    """One point of a metric series; timestamps are epoch milliseconds, NaN is stored as NULL."""

    __tablename__ = "metrics"
    __table_args__ = (
        # With the value, a chart's envelope of a long history reads this index alone.
        Index("ix_metrics_run_key_step_value", "run_id", "key", "step", "value"),
        # The latest value of each metric of a run is a seek, not a scan of its points.
        Index("ix_metrics_run_key_id", "run_id", "key", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[float] = mapped_column(NaNFloat, nullable=True)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class RunArtifact(Base):
    """An artifact logged by a run, by its logical path."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="file")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepRun(Base):
    """One execution (or cache hit) of a pipeline step inside a pipeline run."""

    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    cache_key: Mapped[str | None] = mapped_column(String(80), index=True)
    cached_from: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    cpu_seconds: Mapped[float | None]
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[JSONDict] = mapped_column(default=dict)
    inputs: Mapped[JSONDict] = mapped_column(default=dict)
    outputs: Mapped[JSONDict] = mapped_column(default=dict)
    logs: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)


class DatasetVersion(Base):
    """A content-addressed version of a data set, as ingested."""

    __tablename__ = "dataset_versions"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    source: Mapped[str] = mapped_column(String(1024))
    row_count: Mapped[int] = mapped_column(BigInteger)
    schema_: Mapped[JSONDict] = mapped_column("schema", default=dict)
    details: Mapped[JSONDict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegisteredModel(Base):
    """A named model; its versions are numbered from 1."""

    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelTag(Base):
    """A tag of a registered model."""

    __tablename__ = "model_tags"

    model_name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """One version of a registered model: a packaged folder artifact and its metadata."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    artifact_digest: Mapped[str] = mapped_column(String(80))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    dataset_digest: Mapped[str | None] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(16), default="ready")
    description: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[JSONDict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionTag(Base):
    """A tag of a model version."""

    __tablename__ = "model_version_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelAlias(Base):
    """A movable name (``champion``, ``challenger`` …) that points at one version."""

    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """An append-only record of a state change: who did what to which object, from where,
    and when; one entry of the audit trail's hash chain (see :mod:`opsloop.store.audit`)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_object", "object_type", "object_id"),
        Index("ix_events_seq", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(256))
    details: Mapped[JSONDict] = mapped_column(default=dict)
    # -- the hash chain (migration 0007) --
    source: Mapped[str | None] = mapped_column(String(256))
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row naming the newest entry of the audit chain (its position and hash), so
    that deleting the newest entries breaks verification too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


# -- serving, GitOps, monitoring and AIOps (migration 0002) -----------------------------------


class Deployment(Base):
    """Desired and live state of one deployment, as the reconciler last saw them."""

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[str | None] = mapped_column(String(64))
    desired: Mapped[JSONDict] = mapped_column(default=dict)
    live: Mapped[JSONDict] = mapped_column(default=dict)
    sync_status: Mapped[str] = mapped_column(String(16), default="Unknown")
    health_status: Mapped[str] = mapped_column(String(16), default="Unknown")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncRecord(Base):
    """One reconciliation of one deployment: which revision, what changed, how it ended."""

    __tablename__ = "sync_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128), index=True)
    revision: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    result: Mapped[str] = mapped_column(String(16))
    diff: Mapped[JSONDict] = mapped_column(default=dict)
    details: Mapped[JSONDict] = mapped_column(default=dict)


class Prediction(Base):
    """One served request: inputs, outputs, version, latency.

    A large request keeps its rows out of line (migration 0003): ``rows`` is the request's
    real row count, ``chunk`` the digest of the Parquet chunk that holds them (see
    :mod:`opsloop.store.prediction_chunks`), and ``outputs["log"]`` says how it was logged.
    ``ids`` holds the columns the request sent beyond the model's signature (migration 0006).
    """

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_deployment_time", "deployment", "time"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    deployment: Mapped[str] = mapped_column(String(128), default="")
    model_name: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    shadow: Mapped[bool] = mapped_column(default=False)
    inputs: Mapped[JSONDict] = mapped_column(default=dict)
    outputs: Mapped[JSONDict] = mapped_column(default=dict)
    rows: Mapped[int | None] = mapped_column(Integer)
    chunk: Mapped[str | None] = mapped_column(String(80), index=True)
    ids: Mapped[JSONDict | None] = mapped_column()


class Feedback(Base):
    """A ground-truth label that arrived for an earlier request (a delayed label).

    One label per request of a deployment: a second one is refused, never an overwrite.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_deployment_time", "deployment", "time"),
        Index("uq_feedback_deployment_request", "deployment", "request_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    deployment: Mapped[str] = mapped_column(String(128), default="")
    time: Mapped[datetime] = mapped_column(default=utcnow)
    label: Mapped[JSONDict] = mapped_column(default=dict)


class SeriesPoint(Base):
    """One point of a monitored metric series (drift, quality, service health, cost …)."""

    __tablename__ = "metric_series"
    __table_args__ = (Index("ix_metric_series_key_time", "name", "labels_key", "time"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    labels_key: Mapped[str] = mapped_column(String(512), default="")
    labels: Mapped[JSONDict] = mapped_column(default=dict)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    value: Mapped[float] = mapped_column(Float)


class Incident(Base):
    """Correlated alerts with a ranked root cause and the actions taken."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_quiet", "status", "quiet_since"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32), default="other")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    root_causes: Mapped[JSONDict] = mapped_column(default=dict)
    details: Mapped[JSONDict] = mapped_column(default=dict)
    # When the last firing alert of an open incident ended (None while one fires).
    quiet_since: Mapped[datetime | None]


class Alert(Base):
    """An alert from a detector, a threshold rule or Alertmanager; repeats are deduplicated."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_subject_seen", "subject", "last_seen_at"),
        Index("ix_alerts_deployment_seen", "deployment", "last_seen_at"),
        Index("ix_alerts_incident_start", "incident_id", "starts_at"),
        Index("ix_alerts_status_incident", "status", "incident_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(80), index=True)
    source: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    status: Mapped[str] = mapped_column(String(16), default="firing")
    labels: Mapped[JSONDict] = mapped_column(default=dict)
    annotations: Mapped[JSONDict] = mapped_column(default=dict)
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime | None]
    count: Mapped[int] = mapped_column(default=1)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    details: Mapped[JSONDict] = mapped_column(default=dict)
    # The lineage node the alert is about and the deployment its labels name, as correlation
    # saw them: what finds an alert's lineage neighbours.
    subject: Mapped[str | None] = mapped_column(String(512))
    deployment: Mapped[str | None] = mapped_column(String(128))
    # Its category, feature and model labels: with the node, deployment, name and severity,
    # what tells alerts apart for correlation (their kind), readable without the labels.
    label_category: Mapped[str | None] = mapped_column(Text)
    label_feature: Mapped[str | None] = mapped_column(Text)
    label_model: Mapped[str | None] = mapped_column(Text)


class IncidentAction(Base):
    """A remediation step of an incident: proposed, approved, run, and how it ended."""

    __tablename__ = "incident_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24), default="proposed")
    policy: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[JSONDict] = mapped_column(default=dict)
    result: Mapped[JSONDict] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


# -- access: identities, their roles and grants, API tokens (migration 0008) ------------------


class AccessIdentity(Base):
    """A user or a service account that may call the control plane.

    ``roles`` are the roles held on everything (a JSON list); a disabled identity keeps its
    rows (the audit log names it) but no token of it authenticates.
    """

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="user")
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessGrant(Base):
    """A role an identity holds on one model or one deployment."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("identity_id", "role", "resource_type", "resource"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    resource_type: Mapped[str] = mapped_column(String(16))
    resource: Mapped[str] = mapped_column(String(256))


class ApiToken(Base):
    """An API token of an identity, kept as the SHA-256 of the token: the token itself is
    shown once, when it is issued, and stored nowhere."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Usage(Base):
    """Metered usage of one hour, one kind of consumer and one set of dimensions (FinOps).

    Append-only and compact: a write adds its quantities to the row of its hour and
    dimensions (``key`` is the digest of the dimensions, so the unique index stays small).
    Quantities are resource-seconds: ``memory_gb_s`` is GB held times seconds, and so on.
    """

    __tablename__ = "usage"
    __table_args__ = (
        UniqueConstraint("hour", "kind", "key", name="uq_usage_hour_kind_key"),
        Index("ix_usage_hour", "hour"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hour: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(128), default="")
    team: Mapped[str] = mapped_column(String(128), default="")
    cost_centre: Mapped[str] = mapped_column(String(128), default="")
    run: Mapped[str] = mapped_column(String(64), default="")
    step: Mapped[str] = mapped_column(String(256), default="")
    trial: Mapped[str] = mapped_column(String(128), default="")
    model: Mapped[str] = mapped_column(String(256), default="")
    version: Mapped[str] = mapped_column(String(32), default="")
    deployment: Mapped[str] = mapped_column(String(128), default="")
    environment: Mapped[str] = mapped_column(String(64), default="")
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    memory_gb_s: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_memory_gb_s: Mapped[float] = mapped_column(Float, default=0.0)
    requests: Mapped[float] = mapped_column(Float, default=0.0)
    storage_gb_s: Mapped[float] = mapped_column(Float, default=0.0)
    count: Mapped[int] = mapped_column(Integer, default=0)


class SourceLoad(Base):
    """One load of a data source (a database table or query, an HTTP API): the snapshot it
    made (a content-addressed Parquet artifact), how many rows it holds and how many were new,
    and the watermark it reached."""

    __tablename__ = "source_loads"
    __table_args__ = (Index("ix_source_loads_source_at", "source", "loaded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    digest: Mapped[str] = mapped_column(String(80))
    artifact: Mapped[str] = mapped_column(String(80))
    rows: Mapped[int] = mapped_column(BigInteger)
    new_rows: Mapped[int] = mapped_column(BigInteger)
    watermark: Mapped[JSONDict | None] = mapped_column(JSON)
    details: Mapped[JSONDict] = mapped_column(default=dict)


class Schedule(Base):
    """Where a schedule of ``opsloop.yaml`` stands: the last cron time it handled, the source
    digest or watermark it last saw, the last incident it answered."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[JSONDict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduleRun(Base):
    """One time a schedule was due: the run it started, or why it started none."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        Index("ix_schedule_runs_schedule", "schedule", "id"),
        Index("ix_schedule_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule: Mapped[str] = mapped_column(String(128))
    trigger: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int | None]
    run_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[JSONDict] = mapped_column(default=dict)


class DetectorState(Base):
    """A streaming detector's checkpoint for one metric series (JSON, never pickle).

    ``detector`` is the digest of the detector's class and parameters; ``last_time`` is the
    time of the newest point the state has learnt, so the next pass resumes after it.
    """

    __tablename__ = "detector_states"
    __table_args__ = (
        UniqueConstraint(
            "series", "labels_key", "detector", name="uq_detector_states_series_detector"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    series: Mapped[str] = mapped_column(String(128))
    labels_key: Mapped[str] = mapped_column(String(512), default="")
    detector: Mapped[str] = mapped_column(String(64))
    last_time: Mapped[datetime] = mapped_column()
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
