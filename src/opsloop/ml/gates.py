"""Quality gates a trained model must pass before it may be registered.

The ``evaluate.gates`` section of ``opsloop.yaml`` maps a gate name to its rule::

    roc_auc: {min: 0.80}                                 # a metric threshold (min and/or max)
    log_loss: 0.45                                       # shorthand: the metric's bad side
    auc_floor: {metric: roc_auc, min: 0.75}              # a named threshold on a metric
    vs_champion: {metric: roc_auc, max_drop: 0.005}      # not worse than the current champion
    contract: true                                       # the data contract passed (default)

Check the section with :func:`validate_gates` before training, so a typo fails in a second
instead of after the tuning budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from rich.table import Table
from rich.text import Text

from opsloop.errors import MLError
from opsloop.ml.metrics import METRICS, check_problem_type
from opsloop.spec.loader import did_you_mean

__all__ = [
    "ChampionGate",
    "ContractGate",
    "GateResult",
    "GateSpec",
    "ThresholdGate",
    "evaluate_gates",
    "gates_passed",
    "recent_champion_gates",
    "render_gate_table",
    "validate_gates",
]

# Scores are floats computed twice (challenger vs champion on the same rows); equal models must
# not fail a zero-drop gate on rounding.
_EPS = 1e-12


class ThresholdGate(BaseModel):
    """A metric must be at least ``min`` and/or at most ``max``."""

    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    higher_is_better: bool
    min: float | None = None
    max: float | None = None

    @property
    def requirement(self) -> str:
        """The rule as text, e.g. ``>= 0.8``."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


class ChampionGate(BaseModel):
    """A metric may not be worse than the champion's by more than ``max_drop``."""

    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    higher_is_better: bool
    max_drop: float = 0.0

    @property
    def requirement(self) -> str:
        """The rule as text."""
        return f"worse than champion by <= {self.max_drop:g}"


class ContractGate(BaseModel):
    """The data contract must have passed."""

    model_config = ConfigDict(frozen=True)

    name: str = "contract"

    @property
    def requirement(self) -> str:
        """The rule as text."""
        return "data contract passed"


GateSpec = ThresholdGate | ChampionGate | ContractGate


class GateResult(BaseModel):
    """The verdict of one gate.

    Attributes:
        name: Gate name, as in the configuration.
        kind: ``threshold``, ``vs_champion`` or ``contract``.
        passed: Whether the gate let the model through.
        metric: The metric checked, if any.
        value: The model's value of that metric.
        champion_value: The champion's value, for ``vs_champion``.
        requirement: The rule, as text.
        message: Why it passed or failed, in one line.
    """

    name: str
    kind: Literal["threshold", "vs_champion", "contract"]
    passed: bool
    metric: str | None = None
    value: float | None = None
    champion_value: float | None = None
    requirement: str
    message: str


def _known_metrics(problem_type: str | None) -> dict[str, bool]:
    if problem_type is not None:
        table = METRICS[check_problem_type(problem_type)]
        return {name: info.higher_is_better for name, info in table.items()}
    return {name: info.higher_is_better for t in METRICS.values() for name, info in t.items()}


def _metric(gate: str, name: object, known: dict[str, bool], problem_type: str | None) -> str:
    if not isinstance(name, str) or name not in known:
        scope = f" for {problem_type}" if problem_type else ""
        raise MLError(
            f"gate '{gate}': unknown metric '{name}'; known metrics{scope}: {', '.join(known)}"
            f"{did_you_mean(name, known)}"
        )
    return name


def _number(gate: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise MLError(f"gate '{gate}': '{key}' must be a number, got {value!r}")
    return float(value)


def _keys(gate: str, rule: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(rule) - allowed)
    if unknown:
        allowed_keys = ", ".join(sorted(allowed))
        raise MLError(
            f"gate '{gate}': unknown key(s) {', '.join(unknown)}; allowed: {allowed_keys}"
            f"{did_you_mean(unknown[0], allowed)}"
        )


def validate_gates(
    gates_config: Mapping[str, Any] | None, problem_type: str | None = None
) -> list[GateSpec]:
    """Parse and check the gates section.

    Args:
        gates_config: The ``evaluate.gates`` mapping (None or empty: only the contract gate).
        problem_type: ``classification`` or ``regression``; restricts the known metrics.

    Returns:
        The parsed gates, in configuration order; the contract gate is added unless the
        configuration says ``contract: false``.

    Raises:
        MLError: A gate names an unknown metric (the message lists the known ones), has an
            unknown key, a non-numeric bound, or no bound.
    """
    known = _known_metrics(problem_type)
    specs: list[GateSpec] = []
    contract = True
    for key, rule in (gates_config or {}).items():
        if str(key) == "contract":
            contract = _contract_required(rule)
        else:
            specs.append(_parse_gate(str(key), rule, known, problem_type))
    if contract:
        specs.append(ContractGate())
    return specs


def _contract_required(rule: object) -> bool:
    value = rule
    if isinstance(rule, Mapping):
        _keys("contract", rule, {"required"})
        value = rule.get("required", True)
    if value is not None and not isinstance(value, bool):
        raise MLError(f"gate 'contract': expected true or false, got {rule!r}")
    return value is not False


def _parse_gate(
    name: str, rule: object, known: dict[str, bool], problem_type: str | None
) -> GateSpec:
    if not isinstance(rule, Mapping):
        if isinstance(rule, int | float) and not isinstance(rule, bool):
            metric = _metric(name, name, known, problem_type)
            bound = _number(name, name, rule)
            higher = known[metric]
            return ThresholdGate(
                name=name,
                metric=metric,
                higher_is_better=higher,
                min=bound if higher else None,
                max=None if higher else bound,
            )
        raise MLError(f"gate '{name}': expected a mapping such as {{min: 0.8}}, got {rule!r}")
    if name == "vs_champion" or "max_drop" in rule:
        _keys(name, rule, {"metric", "max_drop"})
        if "metric" not in rule:
            raise MLError(f"gate '{name}': needs 'metric', the metric to compare on")
        metric = _metric(name, rule["metric"], known, problem_type)
        max_drop = _number(name, "max_drop", rule.get("max_drop", 0.0))
        if max_drop < 0:
            raise MLError(f"gate '{name}': 'max_drop' must be >= 0, got {max_drop}")
        return ChampionGate(
            name=name, metric=metric, higher_is_better=known[metric], max_drop=max_drop
        )
    _keys(name, rule, {"metric", "min", "max"})
    metric = _metric(name, rule.get("metric", name), known, problem_type)
    low = _number(name, "min", rule["min"]) if rule.get("min") is not None else None
    high = _number(name, "max", rule["max"]) if rule.get("max") is not None else None
    if low is None and high is None:
        raise MLError(f"gate '{name}': give 'min' and/or 'max'")
    if low is not None and high is not None and low > high:
        raise MLError(f"gate '{name}': 'min' ({low:g}) is greater than 'max' ({high:g})")
    return ThresholdGate(
        name=name, metric=metric, higher_is_better=known[metric], min=low, max=high
    )


def evaluate_gates(
    gates_config: Mapping[str, Any] | None,
    metrics: Mapping[str, float],
    *,
    champion_metrics: Mapping[str, float] | None = None,
    contract_passed: bool,
    problem_type: str | None = None,
) -> list[GateResult]:
    """Judge a model's metrics against the gates.

    Args:
        gates_config: The ``evaluate.gates`` mapping.
        metrics: The model's test metrics.
        champion_metrics: The current champion's metrics on the same test set, if there is one.
        contract_passed: Whether the data contract passed.
        problem_type: Restricts the known metrics when given.

    Returns:
        One result per gate, in configuration order, the contract gate last.

    Raises:
        MLError: The configuration is invalid (see :func:`validate_gates`).
    """
    results: list[GateResult] = []
    for spec in validate_gates(gates_config, problem_type):
        if isinstance(spec, ContractGate):
            results.append(
                GateResult(
                    name=spec.name,
                    kind="contract",
                    passed=contract_passed,
                    requirement=spec.requirement,
                    message="the data passed its contract"
                    if contract_passed
                    else "the data broke its contract",
                )
            )
            continue
        value = metrics.get(spec.metric)
        if value is None or math.isnan(value):
            results.append(
                GateResult(
                    name=spec.name,
                    kind="threshold" if isinstance(spec, ThresholdGate) else "vs_champion",
                    passed=False,
                    metric=spec.metric,
                    requirement=spec.requirement,
                    message=f"'{spec.metric}' was not computed for this model",
                )
            )
        elif isinstance(spec, ThresholdGate):
            results.append(_threshold(spec, float(value)))
        else:
            results.append(_versus(spec, float(value), champion_metrics))
    return results


def _threshold(spec: ThresholdGate, value: float) -> GateResult:
    too_low = spec.min is not None and value < spec.min
    too_high = spec.max is not None and value > spec.max
    if too_low:
        message = f"{spec.metric} {value:.4f} is below the minimum {spec.min:g}"
    elif too_high:
        message = f"{spec.metric} {value:.4f} is above the maximum {spec.max:g}"
    else:
        message = f"{spec.metric} {value:.4f} meets {spec.requirement}"
    return GateResult(
        name=spec.name,
        kind="threshold",
        passed=not (too_low or too_high),
        metric=spec.metric,
        value=value,
        requirement=spec.requirement,
        message=message,
    )


def _versus(
    spec: ChampionGate, value: float, champion_metrics: Mapping[str, float] | None
) -> GateResult:
    def result(passed: bool, message: str, champion: float | None = None) -> GateResult:
        return GateResult(
            name=spec.name,
            kind="vs_champion",
            passed=passed,
            metric=spec.metric,
            value=value,
            champion_value=champion,
            requirement=spec.requirement,
            message=message,
        )

    if champion_metrics is None:
        return result(True, "no champion yet: nothing to compare with, passes")
    champion = champion_metrics.get(spec.metric)
    if champion is None or math.isnan(champion):
        return result(True, f"the champion has no '{spec.metric}' to compare with, passes")
    # Positive drop means the challenger is worse, whichever way the metric improves.
    drop = champion - value if spec.higher_is_better else value - champion
    passed = drop <= spec.max_drop + _EPS
    better = "higher" if spec.higher_is_better else "lower"
    if drop <= 0:
        how = (
            f"{spec.metric} {value:.4f} vs champion {champion:.4f}: not worse ({better} is better)"
        )
    else:
        how = (
            f"{spec.metric} {value:.4f} vs champion {champion:.4f}: worse by {drop:.4f}, "
            f"{'within' if passed else 'beyond'} the allowed {spec.max_drop:g}"
        )
    return result(passed, how, float(champion))


def recent_champion_gates(
    gates_config: Mapping[str, Any] | None,
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float],
    *,
    rows: int,
    problem_type: str | None = None,
) -> list[GateResult]:
    """The ``vs_champion`` gates judged again on recent labelled traffic.

    The held-out test set is a sample of the training data; when production moved away from
    it, a model can beat the champion there and lose to it on what it would serve. Each
    champion gate gets a second verdict, ``<name> (recent traffic)``, on the same rule.

    Args:
        gates_config: The ``evaluate.gates`` mapping.
        metrics: The candidate's metrics on the recent rows.
        champion_metrics: The champion's metrics on the same rows.
        rows: How many recent rows were scored, for the message.
        problem_type: Restricts the known metrics when given.
    """
    results = []
    where = f"on {rows:,} recent labelled rows"
    for spec in validate_gates(gates_config, problem_type):
        if not isinstance(spec, ChampionGate):
            continue
        name = f"{spec.name} (recent traffic)"
        value = metrics.get(spec.metric)
        if value is None or math.isnan(value):
            results.append(
                GateResult(
                    name=name,
                    kind="vs_champion",
                    passed=True,
                    metric=spec.metric,
                    requirement=spec.requirement,
                    message=f"'{spec.metric}' cannot be computed {where}; not compared",
                )
            )
            continue
        verdict = _versus(spec, float(value), champion_metrics)
        results.append(
            verdict.model_copy(update={"name": name, "message": f"{where}: {verdict.message}"})
        )
    return results


def gates_passed(results: Sequence[GateResult]) -> bool:
    """Whether every gate passed."""
    return all(r.passed for r in results)


def render_gate_table(results: Sequence[GateResult]) -> Table:
    """The gate verdicts as a rich table for the console."""
    verdict = "all gates passed" if gates_passed(results) else "gates FAILED"
    table = Table(title=f"quality gates: {verdict}")
    table.add_column("gate")
    table.add_column("requirement")
    table.add_column("value", justify="right")
    table.add_column("champion", justify="right")
    table.add_column("result")
    table.add_column("why", overflow="fold")
    for r in results:
        table.add_row(
            r.name,
            r.requirement,
            f"{r.value:.4f}" if r.value is not None else "",
            f"{r.champion_value:.4f}" if r.champion_value is not None else "",
            Text("PASS", style="bold green") if r.passed else Text("FAIL", style="bold red"),
            r.message,
        )
    return table
