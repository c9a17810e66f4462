"""Configuration of one model server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from opsloop.redact import remember_secret
from opsloop.serve.auth import is_loopback
from opsloop.serve.base import ServableModel

__all__ = ["ServerConfig"]


class ServerConfig(BaseModel):
    """Everything one server needs: its models, routing, batching, limits and logs.

    Args:
        models: Model versions to load and warm at startup.
        traffic: Weighted routing per model, ``{"churn": {"3": 90, "4": 10}}``. A model with
            no entry sends all traffic to the version loaded first.
        shadow: Shadow versions per model, ``{"churn": ["5"]}``: they get a copy of the
            routed traffic, their answers are logged and compared, never returned.
        host: Address to listen on. Any other than loopback needs ``token`` (or
            ``insecure``).
        port: Port to listen on (0 picks a free one when serving through a socket).
        batching: Coalesce concurrent requests for one version into one ``predict`` call.
        max_batch_size: Most rows per ``predict`` call.
        max_wait_ms: Longest a request waits for others to join its batch.
        offload: Run ``predict`` in a worker thread ``always``, ``never`` or when slow (auto).
        offload_threshold_ms: In auto mode, offload when recent predicts took longer.
        predict_threads: Worker threads for offloaded predicts.
        max_body_bytes: Largest request body; larger ones get 413 unread.
        body_timeout_s: Longest a client may take to send a body (408 after).
        header_timeout_s: Longest a client may take to send a request's headers, and longest
            a new connection may stay silent (then it is closed), so slow or idle clients
            cannot pile up.
        keep_alive_s: Idle keep-alive connections are closed after this.
        limit_concurrency: Most connections plus in-flight requests (503 beyond; health and
            readiness still answer).
        max_connections_per_client: Most open connections from one client address; further
            ones are closed at once, so one client cannot take every connection.
        graceful_timeout_s: On SIGTERM, longest to wait for in-flight requests.
        prediction_sink: Receives prediction records (``PredictionSink``); None logs nothing.
        feedback_sink: Receives feedback records (``FeedbackSink``); None refuses feedback.
        log_queue_size: Records that may wait for the sink before requests wait.
        log_batch_size: Most records per sink write.
        log_flush_interval_s: How long records may gather before a write.
        log_inputs: Include request inputs in prediction records.
        token: Bearer token for the inference routes, model metadata and feedback; without
            one they are open, which only a loopback address allows unless ``insecure``.
        feedback_token: Bearer token for feedback only (``POST /v1/feedback``), for a label
            pipeline that must not predict; with it set, feedback needs a token even when
            ``token`` is not set.
        admin_token: Bearer token for ``/v1/admin/models`` (it grants every scope); without
            one, only clients on the loopback address may use it.
        insecure: Allow listening beyond loopback without ``token``.
        loader: Turns a model URI into a ``ServableModel`` for the admin ``load`` action.
        max_shadow_inflight: Most shadow predictions running at once; beyond, copies are
            skipped and counted.
        warmup: Predict once on a synthetic row before a version takes traffic.
        deployment: Name of the deployment this server runs for, written into every
            prediction and feedback record.
        recent_requests: Request ids remembered for feedback (with their model version and
            rows); a label for an id neither remembered nor known to the feedback sink is
            refused.
        feedback_rate: Labels a second one client address may send, on average.
        feedback_burst: Labels one client address may send at once.
        max_feedback_labels: Most labels in one feedback request.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    models: list[Any] = Field(default_factory=list)
    traffic: dict[str, dict[str, float]] = Field(default_factory=dict)
    shadow: dict[str, list[str]] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    batching: bool = True
    max_batch_size: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=2.0, ge=0)
    offload: Literal["auto", "always", "never"] = "auto"
    offload_threshold_ms: float = Field(default=2.0, ge=0)
    predict_threads: int = Field(default=2, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    body_timeout_s: float = Field(default=30.0, gt=0)
    header_timeout_s: float = Field(default=5.0, gt=0)
    keep_alive_s: int = Field(default=5, ge=1)
    limit_concurrency: int | None = Field(default=4096, ge=1)
    max_connections_per_client: int | None = Field(default=256, ge=1)
    graceful_timeout_s: float = Field(default=30.0, gt=0)
    prediction_sink: Any | None = None
    feedback_sink: Any | None = None
    log_queue_size: int = Field(default=10_000, ge=1)
    log_batch_size: int = Field(default=1_000, ge=1)
    log_flush_interval_s: float = Field(default=0.1, ge=0)
    log_inputs: bool = True
    pii_columns: list[str] = Field(default_factory=list)
    pii_policy: Literal["hash", "drop", "keep"] = "hash"
    pii_salt: SecretStr | None = None
    token: SecretStr | None = None
    feedback_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    insecure: bool = False
    loader: Callable[[str], ServableModel] | None = None
    max_shadow_inflight: int = Field(default=256, ge=1)
    warmup: bool = True
    deployment: str | None = None
    recent_requests: int = Field(default=100_000, ge=2)
    feedback_rate: float = Field(default=200.0, gt=0)
    feedback_burst: int = Field(default=2_000, ge=1)
    max_feedback_labels: int = Field(default=1_000, ge=1)

    @field_validator("models")
    @classmethod
    def _servable(cls, models: list[Any]) -> list[Any]:
        seen: set[tuple[str, str]] = set()
        for i, model in enumerate(models):
            if not isinstance(model, ServableModel):
                raise ValueError(
                    f"models[{i}]: {type(model).__name__} is not a ServableModel (needs name, "
                    "version, signature and predict)"
                )
            key = (model.name, str(model.version))
            if key in seen:
                raise ValueError(f"models[{i}]: model '{key[0]}' version '{key[1]}' is given twice")
            seen.add(key)
        return models

    @field_validator("traffic")
    @classmethod
    def _weights(cls, traffic: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, weights in traffic.items():
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(
                    f"traffic.{name}: weights must be non-negative with a positive sum"
                )
        return traffic

    @field_validator("prediction_sink", "feedback_sink")
    @classmethod
    def _sink(cls, sink: Any) -> Any:
        if sink is not None and not callable(getattr(sink, "write_batch", None)):
            raise ValueError(f"{type(sink).__name__} has no write_batch(records) method")
        return sink

    @field_validator("token", "feedback_token", "admin_token")
    @classmethod
    def _one_word(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None:
            text = token.get_secret_value()
            if not text or any(ch.isspace() for ch in text):
                raise ValueError("a token must be one word without whitespace")
            # Masked from now on wherever opsloop redacts a message.
            remember_secret(text)
        return token

    @model_validator(mode="after")
    def _pii_salted(self) -> ServerConfig:
        if self.pii_columns and self.pii_policy == "hash" and self.pii_salt is None:
            raise ValueError(
                "pii_policy 'hash' needs pii_salt (the project's salt, kept with its keys) for "
                f"the PII columns {', '.join(self.pii_columns)}"
            )
        return self

    @model_validator(mode="after")
    def _guarded_beyond_loopback(self) -> ServerConfig:
        if not is_loopback(self.host) and self.token is None and not self.insecure:
            raise ValueError(
                f"host {self.host!r} is reachable from other machines: set a token "
                "(OPSLOOP_SERVE_TOKEN or --token-file) or pass --insecure to serve without one"
            )
        if self.max_feedback_labels > self.feedback_burst:
            raise ValueError(
                f"max_feedback_labels ({self.max_feedback_labels}) exceeds feedback_burst "
                f"({self.feedback_burst}): such a request could never be accepted"
            )
        return self

    @model_validator(mode="after")
    def _routes_known(self) -> ServerConfig:
        loaded: dict[str, set[str]] = {}
        for model in self.models:
            loaded.setdefault(model.name, set()).add(str(model.version))
        for field, table in (("traffic", self.traffic), ("shadow", self.shadow)):
            for name, versions in table.items():
                if name not in loaded:
                    raise ValueError(f"{field}.{name}: no model '{name}' is configured")
                unknown = [v for v in versions if v not in loaded[name]]
                if unknown:
                    raise ValueError(
                        f"{field}.{name}: version(s) {unknown} are not configured; loaded: "
                        f"{sorted(loaded[name])}"
                    )
        return self
