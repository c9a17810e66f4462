"""Threshold alert rules, declared in ``opsloop.yaml``, and the section loader they share.

A rule fires when a metric series crosses a threshold for ``for`` points in a row::

    alerts:
      rules:
        - {name: feature-drift, series: drift.psi, where: {deployment: churn-prod},
           op: ">", threshold: 0.2, for: 2, severity: warning}
        - "error_rate > 0.01"
        - "latency_p99_ms{deployment=churn-prod} >= 250 for 3"
      detector: {series: [latency_p99_ms, error_rate], threshold: 0.8}

The short string form is ``SERIES[{label=value,…}] OP THRESHOLD [for N]``; its rule is named
after the series.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsloop.aiops.alerts import (
    AlertCategory,
    AlertIn,
    Severity,
    alerts_from_flags,
    normalize_severity,
)
from opsloop.errors import SpecError

if TYPE_CHECKING:
    from opsloop.store import Store

__all__ = [
    "AlertsSection",
    "DetectorAlerting",
    "ThresholdRule",
    "evaluate_rule",
    "evaluate_rules",
    "load_alerts_section",
    "load_section",
    "run_alerting",
]

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
        threshold: Anomaly score in [0, 1] from which a point is anomalous.
        for_points: Anomalous points in a row it takes to fire (YAML key ``for``).
        severity: Severity of the alerts.
    """

    series: list[str] = Field(default_factory=list)
    detector: str | None = None
    threshold: float = Field(default=0.75, gt=0, le=1)
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


# -- evaluation ----------------------------------------------------------------------------------


def evaluate_rule(
    rule: ThresholdRule,
    points: list[tuple[datetime, float]],
    labels: Mapping[str, str] | None = None,
) -> list[AlertIn]:
    """Alerts of one rule over one series' points ``(time, value)`` in time order."""
    series_labels = dict(labels or {})
    alert_labels = {**series_labels, **rule.labels}
    if rule.category:
        alert_labels["category"] = rule.category
    annotations = {"summary": rule.summary or f"{rule.describe()}"}
    values = [v for _, v in points]
    return alerts_from_flags(
        rule.name,
        alert_labels,
        [t for t, _ in points],
        [rule.breached(v) for v in values],
        for_points=rule.for_points,
        severity=rule.severity,
        source="rule",
        annotations=annotations,
        details=lambda i: {"value": values[i], "rule": rule.describe(), "series": rule.series},
    )


def evaluate_rules(
    store: Store,
    rules: list[ThresholdRule] | AlertsSection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AlertIn]:
    """Alerts of every rule over every matching stored series, points in ``[since, until)``."""
    rule_list = rules.rules if isinstance(rules, AlertsSection) else rules
    out: list[AlertIn] = []
    for rule in rule_list:
        for name, labels in store.list_series(rule.series):
            if name != rule.series or any(labels.get(k) != v for k, v in rule.where.items()):
                continue
            pts = store.read_series(name, labels, since=since, until=until)
            out.extend(evaluate_rule(rule, [(p.time, p.value) for p in pts], labels))
    return out


def run_alerting(
    store: Store, section: AlertsSection, *, since: datetime | None = None
) -> list[AlertIn]:
    """Alerts of the rules and of the detector the section declares (not yet stored)."""
    alerts = evaluate_rules(store, section, since=since)
    det = section.detector
    if det is not None:
        from opsloop.aiops.alerts import detect_anomalies
        from opsloop.aiops.detectors import default_detector, get_detector

        name = det.detector

        def make() -> Any:
            return get_detector(name) if name else default_detector()

        for prefix in det.series or [""]:
            alerts.extend(
                detect_anomalies(
                    store,
                    series_prefix=prefix,
                    threshold=det.threshold,
                    detector=make,
                    since=since,
                    severity=det.severity,
                    for_points=det.for_points,
                )
            )
    return alerts


# -- loading sections of opsloop.yaml -------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def load_section(path: Path, key: str, model: type[M]) -> M:
    """Validate one top-level section of a YAML file (``opsloop.yaml``) against a model.

    A missing section validates as an empty one.

    Args:
        path: The file, or a folder holding ``opsloop.yaml``.
        key: The top-level key (``alerts``, ``remediation``).
        model: The pydantic model of the section.

    Raises:
        SpecError: The file cannot be read, or the section is invalid; names file, line, field.
    """
    from opsloop.spec.loader import SPEC_FILE, spec_error
    from opsloop.spec.yamlpos import load_yaml_with_lines, read_text

    if path.is_dir():
        path = path / SPEC_FILE
    file = str(path)
    data, lines = load_yaml_with_lines(read_text(path), file)
    if data is not None and not isinstance(data, dict):
        raise SpecError("the top level must be a mapping of keys to values", file=file, line=1)
    section = (data or {}).get(key)
    try:
        return model.model_validate({} if section is None else section)
    except ValidationError as exc:
        raise spec_error(exc, lines, file, (key,)) from exc


def load_alerts_section(path: Path) -> AlertsSection:
    """The ``alerts`` section of ``opsloop.yaml`` (empty when absent)."""
    return load_section(path, "alerts", AlertsSection)
