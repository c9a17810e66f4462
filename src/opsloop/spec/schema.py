"""The ``opsloop.yaml`` schema, version 1.

Every section forbids unknown keys, so a typo is an error with a line number rather than a
silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from opsloop.names import check_name
from opsloop.redact import redact_url
from opsloop.spec.alerting import AlertsSection
from opsloop.spec.executor import ExecutorSection
from opsloop.spec.finops import FinopsSection
from opsloop.spec.lineage import LineageSection
from opsloop.spec.monitoring import DriftThresholds, Duration
from opsloop.spec.remediation import RemediationSection
from opsloop.spec.sources import DataSla, DataSource, ScheduleName, ScheduleSpec, source_kind

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEMA_VERSION = 1
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _UrlSection(_Section):
    url: str

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A spec's repr (in a log line, a traceback's locals) must not show a password.
        yield "url", redact_url(self.url)


class StoreSection(_UrlSection):
    """Where the metadata store lives (overridden by ``OPSLOOP_STORE_URL``)."""


class ArtifactsSection(_UrlSection):
    """Where artifacts live (overridden by ``OPSLOOP_ARTIFACT_URL``)."""


class ProblemSection(_Section):
    """What the model predicts and how it is judged."""

    type: Literal["classification", "regression"]
    target: str
    metric: str | None = None

    @property
    def primary_metric(self) -> str:
        """The metric that ranks candidates: given, or roc_auc / rmse by problem type."""
        if self.metric:
            return self.metric
        return "roc_auc" if self.type == "classification" else "rmse"


class DataSection(_Section):
    """Where the training data comes from: files (a path or a glob), a database table or
    query, or an HTTP JSON API (see :mod:`opsloop.spec.sources`), and its service levels."""

    source: DataSource
    time_column: str | None = None
    name: str | None = None
    sla: DataSla | None = None

    @field_validator("source", mode="before")
    @classmethod
    def _source_kind(cls, value: Any) -> Any:
        return source_kind(value)

    @model_validator(mode="after")
    def _sla_needs_loads(self) -> DataSection:
        if self.sla is not None and isinstance(self.source, str):
            raise ValueError(
                "data.sla is judged from the loads of a database or HTTP source; "
                "a file source has none"
            )
        return self

    @property
    def source_name(self) -> str:
        """The name the source's loads and SLAs are recorded under (``name``, else ``data``)."""
        return self.name or "data"


class FeaturesSection(_Section):
    """Which columns are features and of what kind (detected when not given)."""

    drop: list[str] = Field(default_factory=list)
    numeric: list[str] | None = None
    categorical: list[str] | None = None


class TuneBudget(_Section):
    """What tuning may spend, priced by the ``finops`` rate card valid when it runs.

    Attributes:
        max_cost: Tuning stops once its trials have cost this much (in ``finops.currency``;
            the trial running when it is reached is finished).
    """

    max_cost: float = Field(gt=0)


class TuneSection(_Section):
    """The tuning budget, shared by all candidates."""

    trials: int = Field(default=20, ge=1, le=10_000)
    timeout_s: float = Field(default=120, gt=0)
    cv: int = Field(default=3, ge=2, le=20)
    budget: TuneBudget | None = None


class TrainSection(_Section):
    """Which model families to try and how hard to tune them."""

    candidates: list[str] = Field(
        default_factory=lambda: ["logistic_regression", "random_forest", "hist_gradient_boosting"],
        min_length=1,
    )
    tune: TuneSection = Field(default_factory=TuneSection)
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)


class EvaluateSection(_Section):
    """Gates a candidate must pass to become champion."""

    gates: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RegisterSection(_Section):
    """Where the trained model is registered and which alias it gets."""

    model: str
    alias_on_pass: str = "champion"
    alias_on_fail: str | None = "challenger"


def _dotted_name(name: str) -> str:
    if not _DOTTED.fullmatch(name):
        raise ValueError(f"{name!r} is not a dotted type name such as 'mypkg.module.MyClass'")
    return name


def _alias_name(name: str) -> str:
    return check_name("alias", name)


def _key_ref(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a trusted key is PEM text or the path of a PEM file, not empty")
    if "-----BEGIN" in value and "-----END" not in value:
        raise ValueError("a PEM public key needs its '-----END PUBLIC KEY-----' line")
    return value


class SecuritySection(_Section):
    """What the project trusts beyond opsloop's defaults; every entry is an audited choice.

    Args:
        trusted_types: Dotted names of types and functions a model file may name beyond the
            registry's allow-list (``mypkg.features.Clipper``). Types that run processes, open
            files or import modules are refused whatever is listed here.
        trusted_keys: Public keys (PEM text, or paths of PEM files relative to the project)
            whose model signatures are accepted besides the project's own keys.
        require_signature: Admit only versions that record a signature (every version is
            also verified against it on load and before it is deployed).
        require_scan: ``passed``: admit only versions whose recorded scan passed (a failed
            or missing scan is refused); ``any``: the scan status does not count.
        require_gates: Refuse versions that record a failed gate. Versions registered
            without gates (through the Python API) record none and are not held back; the
            alias of versions that failed their gates (``register.alias_on_fail``) may
            still point at them.
        max_severity: The worst scan finding a version may have and be admitted.

    The admission policy (the last four) is enforced on every alias move, by the reconciler
    before it deploys a version and by the registry's ``load_model``, which the server uses.
    """

    trusted_types: list[Annotated[str, AfterValidator(_dotted_name)]] = Field(
        default_factory=list, max_length=1000
    )
    trusted_keys: list[Annotated[str, AfterValidator(_key_ref)]] = Field(
        default_factory=list, max_length=100
    )
    require_signature: bool = True
    require_scan: Literal["passed", "any"] = "passed"
    require_gates: bool = True
    max_severity: Literal["info", "low", "medium", "high", "critical"] = "medium"


class RetentionSection(_Section):
    """How long the prediction log is kept, enforced by ``opsloop up`` and
    ``opsloop monitor prune``; ``null`` turns a limit off.

    ``max_rows`` counts predicted rows (a large request with all its rows, also those kept
    in a chunk). The oldest requests go first, ``batch_size`` per transaction, and only once
    the monitors have read their windows.
    """

    max_age_days: float | None = Field(default=30.0, gt=0)
    max_rows: int | None = Field(default=5_000_000, ge=1)
    batch_size: int = Field(default=2_000, ge=1, le=50_000)


class PredictionLogSection(_Section):
    """How the model servers log requests, and how long the log is kept.

    A request of more than ``max_inline_rows`` rows is logged by ``large_requests``:
    ``reference`` writes its inputs and outputs as a Parquet chunk to the artifact store and
    keeps a reference in the store; ``sample`` keeps a seeded random sample of
    ``sample_rows`` rows (default: ``max_inline_rows``) and the total; ``drop`` keeps the
    counts only. A monitoring window reads at most ``window_max_rows`` rows back from chunks
    (a seeded sample of each chunk beyond that). Columns tagged ``pii: true`` in the
    contract are logged by ``pii``: ``hash`` (salted SHA-256; the salt is kept with the
    project's signing keys), ``drop``, or ``keep``.
    """

    max_inline_rows: int = Field(default=1_000, ge=1)
    large_requests: Literal["reference", "sample", "drop"] = "reference"
    sample_rows: int | None = Field(default=None, ge=1)
    seed: int = 0
    window_max_rows: int = Field(default=500_000, ge=1)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    pii: Literal["hash", "drop", "keep"] = "hash"

    @property
    def sample_size(self) -> int:
        """Rows ``sample`` keeps: ``sample_rows``, by default ``max_inline_rows``."""
        return self.sample_rows if self.sample_rows is not None else self.max_inline_rows

    @model_validator(mode="after")
    def _sample_fits(self) -> PredictionLogSection:
        if self.sample_rows is not None and self.sample_rows > self.max_inline_rows:
            raise ValueError(
                f"sample_rows ({self.sample_rows}) cannot exceed max_inline_rows "
                f"({self.max_inline_rows}): a sample would be larger than a small request"
            )
        return self


class MonitoringSection(_Section):
    """Monitoring settings of the project; a deployment's document may override ``window``
    and ``drift`` (see :class:`opsloop.spec.monitoring.DeploymentMonitoring`).

    Attributes:
        window: Length of a monitoring window.
        grace: How long after its end a window is monitored: the servers write their
            prediction logs in batches, a little after the requests they record.
        drift: Drift thresholds (Evidently's DataDriftPreset defaults).
        prediction_log: How the model servers log requests, and how long the log is kept.
    """

    window: Duration = Field(default=timedelta(minutes=15))
    grace: Duration = Field(default=timedelta(seconds=30))
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    prediction_log: PredictionLogSection = Field(default_factory=PredictionLogSection)


class CiSection(_Section):
    """What ``opsloop ci`` changes for its training run: a smaller tuning budget, so that a
    pull request gets the same gates in minutes (applied like ``opsloop run -p trials=2``).

    Attributes:
        trials: Tuning trials per candidate.
        timeout_s: Tuning time limit, in seconds.
        alias: The alias the CI run gives the version it registers, passed or not. Unset, the
            run moves the aliases as ``opsloop run`` does, which suits a store made afresh
            for each CI job; with a store shared with production, set it (``ci``) so that a
            pull request never moves the champion.
    """

    trials: int = Field(default=2, ge=1, le=10_000)
    timeout_s: float = Field(default=60, gt=0)
    alias: Annotated[str, AfterValidator(_alias_name)] | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        """The lifecycle parameters the CI run overrides."""
        params: dict[str, Any] = {"trials": self.trials, "timeout_s": self.timeout_s}
        if self.alias is not None:
            params.update(alias_on_pass=self.alias, alias_on_fail=self.alias)
        return params


AccessRole = Literal["viewer", "developer", "deployer", "admin"]
"""The roles of :mod:`opsloop.secops.access`, least first (the spec sits below it)."""


def _service_account_name(name: str) -> str:
    return check_name("service account", name)


def _deployment_name(name: str) -> str:
    return check_name("deployment", name)


class ProductionSelector(_Section):
    """Which deployments are production: only a deployer may change them.

    A deployment is production when its name is listed in ``names``, or when its document's
    ``metadata.labels`` hold every pair of ``labels`` (an empty ``labels`` matches no
    deployment). A plain list is read as ``names``::

        production_deployments: [churn-prod]
        production_deployments: {names: [churn-prod], labels: {tier: prod}}

    Attributes:
        names: Deployment names that are production whatever their labels.
        labels: Label pairs that make a deployment production (default ``env: production``).
    """

    names: list[Annotated[str, AfterValidator(_deployment_name)]] = Field(
        default_factory=list, max_length=1000
    )
    labels: dict[str, str] = Field(default_factory=lambda: {"env": "production"})

    @model_validator(mode="before")
    @classmethod
    def _list_is_names(cls, value: Any) -> Any:
        return {"names": value} if isinstance(value, list) else value

    def matches(self, name: str, labels: dict[str, str] | None = None) -> bool:
        """Whether the deployment ``name`` with document labels ``labels`` is production."""
        if name in self.names:
            return True
        held = labels or {}
        return bool(self.labels) and all(held.get(k) == v for k, v in self.labels.items())


class RemediationAccess(_Section):
    """The service account the remediation engine acts as, and the role it holds.

    Attributes:
        account: The service account's name (its events name it as the actor).
        role: Its role on everything: ``deployer`` lets it roll back, promote and set
            traffic; ``developer`` keeps it to retraining and registering versions.
    """

    account: Annotated[str, AfterValidator(_service_account_name)] = "opsloop-remediation"
    role: AccessRole = "deployer"


class AccessSection(_Section):
    """Who may change what: the policy the control plane and the loop enforce.

    Attributes:
        protected_aliases: Aliases only a deployer may move (on any model).
        production_deployments: Deployments only a deployer may change.
        remediation: The service account the remediation engine acts as, and its role.
    """

    protected_aliases: list[Annotated[str, AfterValidator(_alias_name)]] = Field(
        default_factory=lambda: ["champion"], max_length=1000
    )
    production_deployments: ProductionSelector = Field(default_factory=ProductionSelector)
    remediation: RemediationAccess = Field(default_factory=RemediationAccess)


class ProjectSpec(_Section):
    """The whole of ``opsloop.yaml``."""

    version: int = SCHEMA_VERSION
    project: str = Field(min_length=1, max_length=128)
    description: str = ""
    store: StoreSection | None = None
    artifacts: ArtifactsSection | None = None
    pipelines: dict[str, str] = Field(default_factory=dict)
    problem: ProblemSection | None = None
    data: DataSection | None = None
    contract: dict[str, Any] | None = None
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    train: TrainSection = Field(default_factory=TrainSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    registration: RegisterSection | None = Field(default=None, alias="register")
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    remediation: RemediationSection = Field(default_factory=RemediationSection)
    security: SecuritySection = Field(default_factory=SecuritySection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    ci: CiSection = Field(default_factory=CiSection)
    access: AccessSection = Field(default_factory=AccessSection)
    finops: FinopsSection = Field(default_factory=FinopsSection)
    schedules: dict[ScheduleName, ScheduleSpec] = Field(default_factory=dict)
    lineage: LineageSection = Field(default_factory=LineageSection)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(
                f"schema version {v} is not supported by this opsloop (it reads version "
                f"{SCHEMA_VERSION})"
            )
        return v

    @field_validator("pipelines")
    @classmethod
    def _pipeline_refs(cls, v: dict[str, str]) -> dict[str, str]:
        for name, ref in v.items():
            if ":" not in ref:
                raise ValueError(
                    f"pipeline '{name}': {ref!r} is not 'module:function' (e.g. 'pipelines:train')"
                )
        return v

    @property
    def has_lifecycle(self) -> bool:
        """Whether the spec declares the built-in lifecycle (problem + data + register)."""
        return self.problem is not None and self.data is not None
