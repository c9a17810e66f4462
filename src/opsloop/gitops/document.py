"""Desired-state documents: one Kubernetes-style ``Deployment`` per YAML file.

A document names a registered model and either a concrete version or an alias, an optional
canary split and shadow versions, the replica count and port, resource requests, the
monitoring and remediation policies it refers to, and how the reconciler may act on it::

    apiVersion: opsloop/v1
    kind: Deployment
    metadata: {name: churn-prod, labels: {team: growth}}
    spec:
      model: churn
      version: 3
      traffic: [{version: 3, weight: 90}, {version: 4, weight: 10}]
      shadow: [5]
      replicas: 1
      port: 8601
      monitoring: {window: 15m, monitors: [drift, quality, service], drift: {psi: 0.2}}
      remediation: churn-retrain      # a policy of opsloop.yaml; 'none': never remediate
      syncPolicy: {automated: true, selfHeal: true, prune: true}
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsloop.errors import SpecError
from opsloop.gitops.types import SERVER_TOKEN_ENV
from opsloop.names import check_name, is_name
from opsloop.secretrefs import is_reference
from opsloop.spec.monitoring import DeploymentMonitoring
from opsloop.spec.yamlpos import line_for, load_yaml, load_yaml_with_lines

__all__ = [
    "API_VERSION",
    "KIND",
    "DeploymentDocument",
    "DeploymentSpec",
    "Metadata",
    "ResourceList",
    "Resources",
    "SyncPolicy",
    "TrafficEntry",
    "dump_document",
    "parse_document",
]

API_VERSION = "opsloop/v1"
KIND = "Deployment"

# Deployment names end up as Kubernetes object names and in file names: a DNS-1123 label.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)\Z")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Metadata(_Strict):
    """Name and labels of a deployment."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a valid deployment name: use lower-case letters, digits and "
                "'-', 1-63 characters, starting and ending with a letter or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not _LABEL_KEY.match(key) or len(key) > 253:
                raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
            if not _LABEL_VALUE.match(value):
                raise ValueError(
                    f"label {key}={value!r}: values are at most 63 letters, digits, '-', '_' "
                    "or '.', starting and ending with a letter or digit"
                )
        return labels


class TrafficEntry(_Strict):
    """One version's share of the requests, in percent."""

    version: int = Field(ge=1)
    weight: float = Field(ge=0, le=100)


class ResourceList(_Strict):
    """CPU and memory, as Kubernetes quantities (``500m``, ``512Mi``)."""

    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        if value is not None and not _CPU.match(value):
            raise ValueError(f"{value!r} is not a CPU quantity (e.g. '500m' or '2')")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.match(value):
            raise ValueError(f"{value!r} is not a memory quantity (e.g. '512Mi' or '2Gi')")
        return value


class Resources(_Strict):
    """Requests and limits of one replica."""

    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)


class Objectives(_Strict):
    """What the deployment must keep while its costs are cut (rightsizing, remediation).

    Attributes:
        latency_p99_ms: The p99 latency objective, in milliseconds: rightsizing never
            shrinks a deployment whose observed p99 is over it.
        min_replicas: The fewest replicas it may be scaled down to.
    """

    latency_p99_ms: float | None = Field(default=None, gt=0)
    min_replicas: int = Field(default=1, ge=0, le=64)


class SyncPolicy(_Strict):
    """What the reconciler may do without being asked (Argo CD's meaning).

    Attributes:
        automated: Apply a new revision of the document as soon as it is seen.
        self_heal: Bring back a live state that drifted from Git (a server that died or was
            changed by hand), without a new revision.
        prune: Stop the deployment when its document is removed from Git.
    """

    automated: bool = False
    self_heal: bool = Field(default=False, alias="selfHeal")
    prune: bool = False


class ServerAuth(_Strict):
    """Where the tokens of a deployment's model servers come from.

    Each token is a secret reference (``env:NAME`` or ``file:PATH``), resolved where a server
    starts, never a value: a token written here would be a secret committed to Git. ``token``
    grants predictions and feedback, ``feedbackToken`` feedback only (a label pipeline that must
    not predict), ``adminToken`` every scope (the reconciler's own calls included). On
    Kubernetes, the pod reads them from the Secret ``secret`` (keys ``token``,
    ``feedback-token``, ``admin-token``; default ``<deployment>-serve-tokens``).
    """

    token: str | None = None
    feedback_token: str | None = Field(default=None, alias="feedbackToken")
    admin_token: str | None = Field(default=None, alias="adminToken")
    secret: str | None = None

    @field_validator("token", "feedback_token", "admin_token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and not is_reference(value):
            raise ValueError(
                "a token written in a deployment document is a secret committed to Git: "
                "write env:NAME or file:PATH"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes Secret name")
        return value

    def references(self) -> dict[str, str]:
        """Each configured token's reference, by the environment variable the server reads."""
        refs = {
            SERVER_TOKEN_ENV["token"]: self.token,
            SERVER_TOKEN_ENV["feedback_token"]: self.feedback_token,
            SERVER_TOKEN_ENV["admin_token"]: self.admin_token,
        }
        return {env: ref for env, ref in refs.items() if ref is not None}


class DeploymentSpec(_Strict):
    """What to serve and how."""

    model: str
    version: int | None = Field(default=None, ge=1)
    alias: str | None = None
    traffic: list[TrafficEntry] | None = None
    shadow: list[int] = Field(default_factory=list)
    replicas: int = Field(default=1, ge=0, le=64)
    port: int = Field(ge=1024, le=65535)
    resources: Resources = Field(default_factory=Resources)
    objectives: Objectives = Field(default_factory=Objectives)
    monitoring: DeploymentMonitoring = Field(default_factory=DeploymentMonitoring)
    remediation: str | None = None
    sync_policy: SyncPolicy = Field(default_factory=SyncPolicy, alias="syncPolicy")
    auth: ServerAuth = Field(default_factory=ServerAuth)

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return check_name("model", value)

    @field_validator("remediation")
    @classmethod
    def _policy_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name("remediation policy", value)

    @field_validator("alias")
    @classmethod
    def _alias_name(cls, value: str | None) -> str | None:
        if value is not None and (not is_name(value) or value.isdigit()):
            raise ValueError(f"{value!r} is not a valid alias (use 'version' for numbers)")
        return value

    @field_validator("traffic")
    @classmethod
    def _traffic(cls, traffic: list[TrafficEntry] | None) -> list[TrafficEntry] | None:
        if traffic is None:
            return None
        if not traffic:
            raise ValueError("give at least one version, or leave traffic out")
        versions = [t.version for t in traffic]
        duplicated = sorted({v for v in versions if versions.count(v) > 1})
        if duplicated:
            raise ValueError(f"version(s) {duplicated} appear more than once")
        total = sum(t.weight for t in traffic)
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"weights must add up to 100 (they add up to {total:g})")
        return traffic

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, shadow: list[int]) -> list[int]:
        if any(v < 1 for v in shadow):
            raise ValueError("versions start at 1")
        if len(set(shadow)) != len(shadow):
            raise ValueError("a version appears more than once")
        return shadow

    @model_validator(mode="after")
    def _one_target(self) -> DeploymentSpec:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of 'version' or 'alias'")
        if (
            self.traffic is not None
            and self.version is not None
            and self.version not in {t.version for t in self.traffic}
        ):
            raise ValueError(
                f"version {self.version} is not in traffic; list it there (weight 0 is "
                "allowed) or change 'version'"
            )
        routed = {t.version for t in self.traffic or [] if t.weight > 0}
        both = sorted(routed & set(self.shadow))
        if both:
            raise ValueError(f"version(s) {both} are both in traffic and in shadow")
        return self


class DeploymentDocument(_Strict):
    """One ``opsloop/v1`` ``Deployment`` document."""

    api_version: Literal["opsloop/v1"] = Field(alias="apiVersion")
    kind: Literal["Deployment"]
    metadata: Metadata
    spec: DeploymentSpec

    @property
    def name(self) -> str:
        """The deployment's name."""
        return self.metadata.name

    def to_data(self) -> dict[str, Any]:
        """The document as plain data, with its YAML key names, defaults left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {
            "apiVersion": self.api_version,
            "kind": self.kind,
        }


def parse_document(text: str, file: str) -> DeploymentDocument:
    """Parse and validate one document.

    Args:
        text: The YAML text.
        file: Its path, for messages.

    Raises:
        SpecError: The YAML or the document is invalid; the message names file, line and
            field (the first problem; every problem is in the message).
    """
    data, lines = load_yaml_with_lines(text, file)
    if not isinstance(data, dict):
        raise SpecError("expected a mapping with apiVersion, kind, metadata and spec", file=file)
    try:
        return DeploymentDocument.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, lines, file) from None


def validate_data(data: dict[str, Any], file: str) -> DeploymentDocument:
    """Validate a document given as data (a changed document, before it is written).

    Raises:
        SpecError: The document is invalid; the message names file and field.
    """
    try:
        return DeploymentDocument.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, {}, file) from None


def document_name(text: str) -> str | None:
    """``metadata.name`` of a document that may be invalid, when it can be read at all."""
    try:
        data = load_yaml(text, "<document>", unique_keys=False)
    except SpecError:
        return None
    if isinstance(data, dict):
        meta = data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            return str(meta["name"])
    return None


def dump_document(doc: DeploymentDocument) -> str:
    """The YAML text of a document, keys in their conventional order."""
    data = doc.to_data()
    spec = data["spec"]
    # Written out even at its default: a reader of the document should not have to know it.
    spec["replicas"] = doc.spec.replicas
    for entry in spec.get("traffic") or []:
        if float(entry["weight"]).is_integer():
            entry["weight"] = int(entry["weight"])
    order = [
        "model",
        "version",
        "alias",
        "traffic",
        "shadow",
        "replicas",
        "port",
        "resources",
        "objectives",
        "monitoring",
        "remediation",
        "syncPolicy",
    ]
    ordered = {
        "apiVersion": data["apiVersion"],
        "kind": data["kind"],
        "metadata": data["metadata"],
        "spec": {k: spec[k] for k in order if k in spec},
    }
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


def _spec_error(exc: ValidationError, lines: dict[Any, int], file: str) -> SpecError:
    problems: list[tuple[int | None, str, str]] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function"))
        field = ".".join(str(p) for p in loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "literal_error":
            message = f"{message} (got {err.get('input')!r})"
        problems.append((line_for(lines, loc), field, message))
    line, field, message = problems[0]
    if len(problems) > 1:
        more = "; ".join(f"{f or '<document>'} (line {ln}): {m}" for ln, f, m in problems[1:])
        message = f"{message}; also: {more}"
    return SpecError(message, file=file, line=line, field=field or None)
