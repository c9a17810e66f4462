"""The words the reconciler and the runtimes share: statuses, resolved specs, live state."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SERVER_TOKEN_ENV",
    "Health",
    "HealthStatus",
    "LiveDeployment",
    "ObservedRouting",
    "RuntimeSpec",
    "SyncStatus",
]


class SyncStatus(StrEnum):
    """Whether the live state matches Git (Argo CD's vocabulary)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthStatus(StrEnum):
    """How the live deployment is doing (Argo CD's vocabulary)."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


class Health(BaseModel):
    """A health status and why."""

    model_config = ConfigDict(frozen=True)

    status: HealthStatus
    reason: str


#: The environment variables ``opsloop serve`` reads its tokens from, by ``spec.auth`` field
#: (the serving discipline's names, repeated here because gitops does not import serve).
SERVER_TOKEN_ENV = {
    "token": "OPSLOOP_SERVE_TOKEN",
    "feedback_token": "OPSLOOP_FEEDBACK_TOKEN",
    "admin_token": "OPSLOOP_ADMIN_TOKEN",
}


class RuntimeSpec(BaseModel):
    """A deployment as a runtime runs it: the document with aliases resolved to versions.

    Attributes:
        name: Deployment name.
        model: Registered model name.
        version: The main version (the document's version, or what its alias points at now).
        alias: The alias the version was resolved from, if any.
        traffic: Percent of requests per version; every version listed is loaded.
        shadow: Versions that get a copy of the traffic; their answers are never returned.
        replicas: Server processes (local) or pods (Kubernetes).
        port: The port of the first replica.
        resources: Kubernetes-style requests and limits.
        labels: The document's labels.
        auth: Secret references of the servers' tokens, by the environment variable the
            server reads each from (references, never values).
        token_secret: The Kubernetes Secret the pods read their tokens from, when the
            document names one.

    What the loop does with the deployment (``spec.monitoring``, ``spec.remediation``) is not
    the runtime's business: changing it restarts nothing.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    model: str
    version: int
    alias: str | None = None
    traffic: dict[int, float]
    shadow: list[int] = Field(default_factory=list)
    replicas: int = 1
    port: int
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    auth: dict[str, str] = Field(default_factory=dict)
    token_secret: str | None = None

    @property
    def versions(self) -> list[int]:
        """Every version a server loads: the main one, those with traffic, the shadows."""
        return sorted({self.version, *self.traffic, *self.shadow})

    @property
    def routing(self) -> ObservedRouting:
        """What a server's routing table should say."""
        return ObservedRouting(
            versions=self.versions, traffic=dict(self.traffic), shadow=sorted(self.shadow)
        )

    def model_uris(self) -> list[str]:
        """``models:/NAME/VERSION`` for every version to load, main version first."""
        rest = [v for v in self.versions if v != self.version]
        return [f"models:/{self.model}/{v}" for v in [self.version, *rest]]

    def server_args(self, host: str, port: int) -> list[str]:
        """Arguments of ``opsloop serve`` for one replica of this deployment.

        Predictions and feedback go to the project's metadata store, labelled with the
        deployment, where the monitors read them.
        """
        args = [*self.model_uris(), "--host", host, "--port", str(port), "--deployment", self.name]
        if self.traffic:
            split = ",".join(f"{v}:{w:g}" for v, w in sorted(self.traffic.items()))
            args += ["--traffic", f"{self.model}={split}"]
        if self.shadow:
            args += ["--shadow", f"{self.model}=" + ",".join(str(v) for v in sorted(self.shadow))]
        return args

    def spec_hash(self) -> str:
        """A digest of everything that matters to a runtime (labels and references included)."""
        data = self.model_dump(mode="json")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


class ObservedRouting(BaseModel):
    """The routing table a running server reports."""

    model_config = ConfigDict(frozen=True)

    versions: list[int]
    traffic: dict[int, float]
    shadow: list[int] = Field(default_factory=list)

    def normalized(self) -> ObservedRouting:
        """Weights as percentages without zero entries, so equal splits compare equal."""
        total = sum(self.traffic.values()) or 1.0
        traffic = {v: round(w * 100.0 / total, 6) for v, w in self.traffic.items() if w > 0}
        return ObservedRouting(
            versions=sorted(self.versions), traffic=traffic, shadow=sorted(self.shadow)
        )


class LiveDeployment(BaseModel):
    """What a runtime reports about one deployment it runs.

    Attributes:
        name: Deployment name.
        spec: The spec the runtime last applied.
        running: Replicas whose process is alive.
        routing: Routing tables the running servers report (None where they do not say).
        endpoints: URLs of the replicas.
        details: Runtime-specific facts (PIDs, log files, manifest paths …).
    """

    name: str
    spec: RuntimeSpec
    running: int
    routing: list[ObservedRouting | None] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
