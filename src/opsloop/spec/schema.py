"""The ``opsloop.yaml`` schema, version 1.

Every section forbids unknown keys, so a typo is an error with a line number rather than a
silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsloop.redact import redact_url

SCHEMA_VERSION = 1


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
    """Where the training data comes from."""

    source: str
    time_column: str | None = None
    name: str | None = None


class FeaturesSection(_Section):
    """Which columns are features and of what kind (detected when not given)."""

    drop: list[str] = Field(default_factory=list)
    numeric: list[str] | None = None
    categorical: list[str] | None = None


class TuneSection(_Section):
    """The tuning budget, shared by all candidates."""

    trials: int = Field(default=20, ge=1, le=10_000)
    timeout_s: float = Field(default=120, gt=0)
    cv: int = Field(default=3, ge=2, le=20)


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
    # Validated (with line numbers) by opsloop.aiops, which owns their schemas; kept loose
    # here so that opening a project does not import the AIOps stack.
    alerts: dict[str, Any] | None = None
    remediation: dict[str, Any] | None = None

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
