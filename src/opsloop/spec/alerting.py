"""The ``alerts`` section of ``opsloop.yaml``: threshold rules and the anomaly detector.

A rule fires when a metric series crosses a threshold for ``for`` points in a row::

    alerts:
      rules:
        - {name: feature-drift, series: drift.psi, where: {deployment: churn-prod},
           op: ">", threshold: 0.2, for: 2, severity: warning}
        - "error_rate > 0.01"
        - "latency_p99_ms{deployment=churn-prod} >= 250 for 3"
      detector: {series: [latency_p99_ms, error_rate], threshold: 0.8}

The short string form is ``SERIES[{label=value,…}] OP THRESHOLD [for N]``; its rule is named
after the series. The schema is validated with the rest of ``opsloop.yaml``; evaluating the
rules is :mod:`opsloop.aiops.rules`' work.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "INCIDENT_KINDS",
    "SEVERITIES",
    "AlertCategory",
    "AlertsSection",
    "DetectorAlerting",
    "IncidentKind",
    "Severity",
    "ThresholdRule",
    "normalize_severity",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
"""Severities, least to most severe."""
AlertCategory = Literal[
    "data_drift",
    "data_quality",
    "quality_drop",
    "error_rate",
    "latency",
    "cost",
    "infrastructure",
    "other",
]
"""What an alert signals, read from its ``category`` label or its name."""

_SEVERITY_WORDS: dict[str, Severity] = {
    "info": "info",
    "informational": "info",
    "low": "info",
    "none": "info",
    "debug": "info",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
    "moderate": "warning",
    "critical": "critical",
    "crit": "critical",
    "error": "critical",
    "high": "critical",
    "major": "critical",
    "page": "critical",
    "emergency": "critical",
    "fatal": "critical",
}


def normalize_severity(value: str | None) -> Severity:
    """One of :data:`SEVERITIES` for a severity word (``error``, ``page`` … → critical).

    Unknown words and None read as ``warning``.
    """
    if not value:
        return "warning"
    return _SEVERITY_WORDS.get(value.strip().lower(), "warning")


IncidentKind = Literal[
    "data_drift",
    "quality_drop",
    "error_rate",
    "latency",
    "cost_anomaly",
    "infrastructure",
    "other",
]
INCIDENT_KINDS: tuple[str, ...] = get_args(IncidentKind)
"""Kinds of incidents; remediation policies select incidents by kind."""

# -- threshold rules ---------------------------------------------------------------------------

Op = Literal[">", ">=", "<", "<=", "==", "!="]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(
    r"^\s*(?P<series>[A-Za-z_][A-Za-z0-9_.:\-]*)\s*"
    r"(?:\{(?P<where>[^}]*)\})?\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<threshold>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?:for\s+(?P<for>\d+))?\s*$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}\Z")


def _parse_expr(expr: str) -> dict[str, Any]:
    match = _EXPR.match(expr)
    if match is None:
        raise ValueError(
            f"{expr!r} is not a rule expression: use 'SERIES[{{label=value,...}}] OP THRESHOLD "
            "[for N]', e.g. 'error_rate{deployment=churn-prod} > 0.01 for 2'"
        )
    where: dict[str, str] = {}
    for part in (match["where"] or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{expr!r}: label matcher {part.strip()!r} is not 'label=value'")
        where[key.strip()] = value.strip().strip("\"'")
    out: dict[str, Any] = {
        "series": match["series"],
        "op": match["op"],
        "threshold": float(match["threshold"]),
        "where": where,
    }
    if match["for"]:
        out["for"] = int(match["for"])
    return out


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThresholdRule(_Section):
    """Fire when a series crosses a threshold for ``for`` points in a row.

    Attributes:
        name: The alert name (defaults to the series name in the short form).
        series: The metric series name (``drift.psi``, ``error_rate`` …).
        where: Labels a series must have to be watched (a subset match); none: every series
            of that name.
        op: Comparison of the value against the threshold.
        threshold: The threshold.
        for_points: Points in a row the condition must hold to fire (YAML key ``for``);
            monitors write their series at a fixed cadence, so this is a duration.
        severity: ``info``, ``warning`` or ``critical``.
        labels: Extra labels of the alert.
        summary: Text for people.
        category: What kind of problem the alert signals, when its name does not say
            (``data_drift``, ``quality_drop``, ``error_rate``, ``latency``, ``cost`` …).
    """

    name: str
    series: str = Field(min_length=1, max_length=128)
    where: dict[str, str] = Field(default_factory=dict)
    op: Op = ">"
    threshold: float
    for_points: int = Field(default=1, ge=1, le=10_000, alias="for")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    category: AlertCategory | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            parsed = _parse_expr(data)
            return {"name": parsed["series"], **parsed}
        if isinstance(data, Mapping) and "expr" in data:
            rest = {k: v for k, v in data.items() if k != "expr"}
            parsed = _parse_expr(str(data["expr"]))
            merged = {**parsed, **rest}
            merged.setdefault("name", parsed["series"])
            return merged
        return data

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid rule name: letters, digits, '_', '-', '.', ':' "
                "(1-128 characters)"
            )
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        return normalize_severity(value) if isinstance(value, str) else value

    @field_validator("where", "labels", mode="before")
    @classmethod
    def _str_values(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        return value

    def breached(self, value: float) -> bool:
        """Whether one value crosses the threshold."""
        return _OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        """The rule as an expression: ``error_rate{deployment=a} > 0.01 for 2``."""
        where = ",".join(f"{k}={v}" for k, v in sorted(self.where.items()))
        sel = f"{self.series}{{{where}}}" if where else self.series
        tail = f" for {self.for_points}" if self.for_points > 1 else ""
        return f"{sel} {self.op} {self.threshold:g}{tail}"


class DetectorAlerting(_Section):
    """Alerts from the streaming anomaly detector on chosen series.

    Attributes:
        series: Series name prefixes to watch (empty: every series).
        detector: Registry name of the detector (default: the default detector).
        threshold: Anomaly score in (0, 1] from which a point is anomalous (default: the
            detector's own, the corpus-wide threshold its NAB benchmark chose).
        for_points: Anomalous points in a row it takes to fire (YAML key ``for``).
        severity: Severity of the alerts.
    """

    series: list[str] = Field(default_factory=list)
    detector: str | None = None
    threshold: float | None = Field(default=None, gt=0, le=1)
    for_points: int = Field(default=1, ge=1, alias="for")
    severity: Severity = "warning"


class AlertsSection(_Section):
    """The ``alerts`` section of ``opsloop.yaml``."""

    rules: list[ThresholdRule] = Field(default_factory=list)
    detector: DetectorAlerting | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsSection:
        seen: dict[tuple[str, str], int] = {}
        for i, rule in enumerate(self.rules):
            key = (rule.name, repr(sorted(rule.where.items())))
            if key in seen:
                raise ValueError(
                    f"rules {seen[key]} and {i} are both named {rule.name!r} with the same "
                    "'where': their alerts would be indistinguishable"
                )
            seen[key] = i
        return self
