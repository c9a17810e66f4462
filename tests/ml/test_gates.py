from __future__ import annotations

import pytest
from rich.console import Console

from opsloop.errors import MLError
from opsloop.ml import (
    ChampionGate,
    ContractGate,
    GateResult,
    ThresholdGate,
    evaluate_gates,
    gates_passed,
    render_gate_table,
    validate_gates,
)

CLF = {"roc_auc": 0.85, "f1": 0.6, "log_loss": 0.40}


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_thresholds_pass_and_fail() -> None:
    config = {"roc_auc": {"min": 0.80}, "f1": {"min": 0.7}, "log_loss": {"max": 0.5}}
    results = by_name(evaluate_gates(config, CLF, contract_passed=True))
    assert results["roc_auc"].passed and results["roc_auc"].value == 0.85
    assert not results["f1"].passed
    assert results["f1"].message == "f1 0.6000 is below the minimum 0.7"
    assert results["log_loss"].passed
    assert not gates_passed(list(results.values()))


def test_min_and_max_together_and_a_named_gate() -> None:
    config = {"auc_band": {"metric": "roc_auc", "min": 0.7, "max": 0.8}}
    (band, _contract) = evaluate_gates(config, CLF, contract_passed=True)
    assert band.metric == "roc_auc" and not band.passed
    assert "above the maximum 0.8" in band.message
    assert band.requirement == ">= 0.7 and <= 0.8"


def test_number_shorthand_follows_the_metric_direction() -> None:
    specs = validate_gates({"roc_auc": 0.8, "log_loss": 0.5}, "classification")
    assert specs[0] == ThresholdGate(
        name="roc_auc", metric="roc_auc", higher_is_better=True, min=0.8
    )
    assert specs[1] == ThresholdGate(
        name="log_loss", metric="log_loss", higher_is_better=False, max=0.5
    )


def test_vs_champion_passes_without_a_champion_and_says_so() -> None:
    config = {"vs_champion": {"metric": "roc_auc", "max_drop": 0.005}}
    gate = by_name(evaluate_gates(config, CLF, contract_passed=True))["vs_champion"]
    assert gate.passed
    assert gate.message.startswith("no champion yet")


@pytest.mark.parametrize(
    ("champion", "passed"),
    [(0.853, True), (0.855, True), (0.856, False), (0.80, True)],
)
def test_vs_champion_higher_is_better(champion: float, passed: bool) -> None:
    config = {"vs_champion": {"metric": "roc_auc", "max_drop": 0.005}}
    gate = by_name(
        evaluate_gates(config, CLF, champion_metrics={"roc_auc": champion}, contract_passed=True)
    )["vs_champion"]
    assert gate.passed is passed
    assert gate.champion_value == champion


@pytest.mark.parametrize(("challenger", "passed"), [(1.0, True), (1.09, True), (1.2, False)])
def test_vs_champion_lower_is_better(challenger: float, passed: bool) -> None:
    # rmse: lower is better, so a HIGHER challenger value is the drop.
    config = {"vs_champion": {"metric": "rmse", "max_drop": 0.1}}
    gate = by_name(
        evaluate_gates(
            config,
            {"rmse": challenger},
            champion_metrics={"rmse": 1.0},
            contract_passed=True,
            problem_type="regression",
        )
    )["vs_champion"]
    assert gate.passed is passed
    if not passed:
        assert "worse by 0.2000, beyond the allowed 0.1" in gate.message


def test_equal_models_pass_a_zero_drop_gate() -> None:
    config = {"vs_champion": {"metric": "roc_auc"}}
    gate = evaluate_gates(
        config, {"roc_auc": 0.1 + 0.2}, champion_metrics={"roc_auc": 0.3}, contract_passed=True
    )[0]
    assert gate.passed


def test_contract_gate_is_on_by_default_and_can_be_disabled() -> None:
    results = evaluate_gates({"roc_auc": {"min": 0.5}}, CLF, contract_passed=False)
    assert results[-1].kind == "contract" and not results[-1].passed
    assert results[-1].message == "the data broke its contract"
    assert not gates_passed(results)
    results = evaluate_gates({"contract": False}, CLF, contract_passed=False)
    assert results == []
    assert validate_gates({"contract": {"required": True}})[-1] == ContractGate()
    assert validate_gates(None) == [ContractGate()]


def test_metric_missing_from_results_fails_the_gate() -> None:
    gate = evaluate_gates({"pr_auc": {"min": 0.5}}, CLF, contract_passed=True)[0]
    assert not gate.passed
    assert gate.message == "'pr_auc' was not computed for this model"


def test_unknown_metric_names_the_gate_and_the_known_metrics() -> None:
    with pytest.raises(
        MLError,
        match=r"gate 'auc': unknown metric 'auc'; known metrics for classification: roc_auc, pr",
    ):
        validate_gates({"auc": {"min": 0.8}}, "classification")
    with pytest.raises(MLError, match="gate 'vs_champion': unknown metric 'rmse'"):
        validate_gates({"vs_champion": {"metric": "rmse"}}, "classification")
    # Without a problem type every known metric is accepted.
    assert isinstance(validate_gates({"vs_champion": {"metric": "rmse"}})[0], ChampionGate)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"roc_auc": {"minimum": 0.8}}, "gate 'roc_auc': unknown key"),
        ({"roc_auc": {}}, "give 'min' and/or 'max'"),
        ({"roc_auc": {"min": "high"}}, "'min' must be a number"),
        ({"roc_auc": {"min": 0.9, "max": 0.8}}, "'min' \\(0.9\\) is greater than 'max'"),
        ({"vs_champion": {"max_drop": 0.1}}, "needs 'metric'"),
        ({"vs_champion": {"metric": "roc_auc", "max_drop": -1}}, "'max_drop' must be >= 0"),
        ({"roc_auc": "yes"}, "expected a mapping"),
        ({"contract": "maybe"}, "gate 'contract': expected true or false"),
    ],
)
def test_invalid_gate_configuration(config: dict[str, object], message: str) -> None:
    with pytest.raises(MLError, match=message):
        validate_gates(config, "classification")


def test_gate_table_renders_every_gate() -> None:
    results = evaluate_gates(
        {"roc_auc": {"min": 0.9}, "vs_champion": {"metric": "roc_auc", "max_drop": 0.01}},
        CLF,
        champion_metrics={"roc_auc": 0.84},
        contract_passed=True,
    )
    table = render_gate_table(results)
    assert table.row_count == 3
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "gates FAILED" in text
    assert text.count("PASS") == 2 and text.count("FAIL") == 2  # title + one row


def test_results_serialise_to_json() -> None:
    results = evaluate_gates({"roc_auc": {"min": 0.8}}, CLF, contract_passed=True)
    assert GateResult.model_validate_json(results[0].model_dump_json()) == results[0]
