"""Data contracts: the model, each rule failing and passing, severities, reporting."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

from opsloop.data import (
    ContractReport,
    DataContract,
    check_contract,
    parse_contract,
    raise_for_errors,
    render_contract_report,
)
from opsloop.errors import ContractError, DataError, SpecError

SPEC_YAML = """
columns:
  tenure_months: {dtype: int, min: 0, nullable: false}
  plan: {dtype: category, values: [basic, plus, pro]}
  email: {dtype: str, pattern: "^[^@]+@[^@]+$", severity: warn, pii: true}
row_count: {min: 100}
unique: [customer_id]
"""


def contract(**spec: Any) -> DataContract:
    return DataContract.model_validate(spec)


def column(name: str, **rules: Any) -> DataContract:
    return contract(columns={name: rules})


def failures(report: ContractReport) -> set[tuple[str | None, str]]:
    return {(f.column, f.rule) for f in report.failures}


def only(report: ContractReport) -> Any:
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


# --- the model ---------------------------------------------------------------------------------


def test_yaml_spec_parses_and_passes_on_good_data(customers: pd.DataFrame) -> None:
    spec = parse_contract(yaml.safe_load(SPEC_YAML))
    assert spec.columns["email"].severity == "warn"
    assert spec.unique[0].columns == ["customer_id"]
    report = check_contract(customers.fillna({"tenure_months": 0}), spec)
    assert report.passed, report.failures
    assert report.failures == []
    assert report.rows == len(customers)
    assert report.rules_checked >= 8


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"columns": {"a": {"dtype": "int", "minimum": 0}}}, "contract.columns.a.minimum"),
        ({"columns": {"a": {"dtype": "integer"}}}, "contract.columns.a.dtype"),
        ({"colums": {}}, "contract.colums"),
        ({"columns": {"a": {"severity": "fatal"}}}, "contract.columns.a.severity"),
        ({"row_count": {"min": 10, "max": 5}}, "contract.row_count"),
        ({"columns": {"a": {"pattern": "(unclosed"}}}, "contract.columns.a.pattern"),
        ({"columns": {"a": {"dtype": "str", "min": 1}}}, "contract.columns.a"),
        ({"columns": {"a": {"dtype": "int", "min": 5, "max": 1}}}, "contract.columns.a"),
        ({"columns": {"a": {"dtype": "datetime", "min": 5}}}, "contract.columns.a"),
        ({"columns": {"a": {"values": []}}}, "contract.columns.a.values"),
        ({"columns": {"a": {"max_null_fraction": 1.5}}}, "contract.columns.a.max_null_fraction"),
        ({"unique": [[]]}, "contract.unique.0.columns"),
        ({"columns": {"a": {"severity": {"min": "fatal"}}}}, "contract.columns.a.severity.min"),
        ({"columns": {"a": {"severity": {"mn": "warn"}}}}, "contract.columns.a.severity.mn"),
        ({"columns": {"int": {"min": "abc"}}}, "contract.columns.int.min"),
        ({"columns": {"a": {"values": [[1]]}}}, "contract.columns.a.values.0"),
    ],
)
def test_bad_contracts_are_spec_errors(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_contract(spec, file="opsloop.yaml")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"opsloop.yaml: field '{field}'")
    with pytest.raises(ValidationError):
        DataContract.model_validate(spec)


def test_contract_round_trips_through_json() -> None:
    spec = parse_contract(
        {
            "columns": {
                "t": {"dtype": "datetime", "min": "2020-01-01", "severity": {"min": "warn"}},
                "n": {"dtype": "float", "max": 1.5},
            },
            "unique": ["a", ["b", "c"], {"columns": ["d"], "severity": "warn"}],
            "strict": True,
        }
    )
    again = DataContract.model_validate(json.loads(spec.model_dump_json()))
    assert again == spec
    assert [u.columns for u in spec.unique] == [["a"], ["b", "c"], ["d"]]
    assert spec.columns["t"].severity_of("min") == "warn"
    assert spec.columns["t"].severity_of("dtype") == "error"


# --- each rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "bad"),
    [
        ([1, 2, 3], "int", []),
        ([1.0, np.nan, 3.0], "int", []),  # integers with a gap, as CSV gives them
        (["1", "2", "x"], "int", ["x"]),  # strings in an int column
        ([1.0, 2.5, 3.0], "int", [2.5]),
        ([True, False], "int", [True, False]),
        ([1, 2.5, 3], "float", []),
        (["1.5", "abc", None], "float", ["abc"]),
        (["a", "b", None], "str", []),
        ([1, 2, 3], "str", [1, 2, 3]),
        (pd.Categorical(["a", "b", "a"]), "category", []),
        (["basic", "pro", None], "category", []),
        ([1.5, 2.0, 3.0], "category", [1.5]),
        ([True, False, None], "bool", []),
        (["true", "False", "perhaps"], "bool", ["perhaps"]),
        (pd.to_datetime(["2024-01-01", "2024-01-02", None]), "datetime", []),
        (["2024-01-01", "2024-01-02T10:00:00", "soon"], "datetime", ["soon"]),
        ([1, 2, 3], "datetime", [1, 2, 3]),
    ],
)
def test_dtype_rule(values: Any, dtype: str, bad: list[Any]) -> None:
    """``bad`` lists the failing values, each failing once."""
    frame = pd.DataFrame({"c": values})
    report = check_contract(frame, column("c", dtype=dtype))
    if not bad:
        assert report.passed and not report.failures, report.failures
        return
    failure = only(report)
    assert (failure.column, failure.rule, failure.severity) == ("c", "dtype", "error")
    assert failure.failing_rows == len(bad)
    assert failure.examples == bad
    assert "column 'c'" in failure.message and dtype in failure.message
    assert not report.passed


@pytest.mark.parametrize(
    ("values", "rules", "rule", "bad"),
    [
        ([0, 5, 10], {"dtype": "int", "min": 0, "max": 10}, None, []),
        ([-1, 5, -3], {"dtype": "int", "min": 0}, "min", [-1, -3]),
        ([1, 50, 11], {"dtype": "int", "max": 10}, "max", [50, 11]),
        ([0.5, 1.5], {"dtype": "float", "max": 1.0}, "max", [1.5]),
        (["5", "-2", "4.5"], {"min": 0}, "min", ["-2"]),
        ([1, -1, 2], {"min": 0}, "min", [-1]),  # no dtype declared
        (
            ["2019-12-31", "2020-06-01", "2030-01-01"],
            {"dtype": "datetime", "min": "2020-01-01", "max": "2029-12-31"},
            None,
            None,
        ),
        (["a", "b", "a"], {"values": ["a", "b"]}, None, []),
        (["a", "z", None], {"dtype": "category", "values": ["a", "b"]}, "values", ["z"]),
        ([1, 2, 7], {"dtype": "int", "values": [1, 2, 3]}, "values", [7]),
        (
            ["a@b.c", "nope", None],
            {"dtype": "str", "pattern": "^[^@]+@[^@]+$"},
            "pattern",
            ["nope"],
        ),
        (["id-1", "id-22"], {"pattern": r"^id-\d+$"}, None, []),
        (["ab", "ba"], {"pattern": r"^(?!b)"}, "pattern", ["ba"]),  # Python-only syntax
        ([1, None, 3], {"nullable": False}, "nullable", []),
        ([1, None, None], {"nullable": True}, None, []),
        ([1, 2, 2, None, None], {"unique": True}, "unique", [2]),
        ([1, None, None, 4], {"max_null_fraction": 0.25}, "max_null_fraction", []),
        ([1, None, 3, 4], {"max_null_fraction": 0.25}, None, []),
    ],
)
def test_value_rules(values: list[Any], rules: dict[str, Any], rule: str | None, bad: Any) -> None:
    frame = pd.DataFrame({"c": values})
    report = check_contract(frame, column("c", **rules))
    if rule is None and bad is None:
        # Both bounds broken on the datetime column.
        assert failures(report) == {("c", "min"), ("c", "max")}
        mins = next(f for f in report.failures if f.rule == "min")
        assert mins.examples == ["2019-12-31"]
        return
    if rule is None:
        assert report.passed and not report.failures, report.failures
        return
    failure = only(report)
    assert (failure.column, failure.rule) == ("c", rule)
    assert failure.examples == bad
    assert failure.message.startswith("column 'c': ")


def test_nullable_and_null_fraction_counts() -> None:
    frame = pd.DataFrame({"c": [1, None, None, 4]})
    report = check_contract(frame, column("c", nullable=False, max_null_fraction=0.1))
    by_rule = {f.rule: f for f in report.failures}
    assert by_rule["nullable"].failing_rows == 2
    assert by_rule["max_null_fraction"].failing_rows == 2
    assert by_rule["max_null_fraction"].observed == 0.5
    assert "50.00%" in by_rule["max_null_fraction"].message


def test_empty_frame_breaks_only_row_count() -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="str")})
    spec = contract(
        columns={
            "a": {"dtype": "int", "min": 0, "nullable": False, "max_null_fraction": 0.0},
            "b": {"dtype": "str", "pattern": "x", "values": ["x"], "unique": True},
        },
        row_count={"min": 1},
        unique=[["a", "b"]],
    )
    assert failures(check_contract(frame, spec)) == {(None, "row_count")}


def test_tz_aware_times_against_naive_bounds() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2019-12-31T23:00:00Z", "2020-01-02T00:00:00Z"])})
    failure = only(check_contract(frame, column("t", dtype="datetime", min="2020-01-01")))
    assert failure.rule == "min" and failure.failing_rows == 1
    aware = column("t", dtype="datetime", min="2020-01-01T00:00:00+02:00")
    naive = pd.DataFrame({"t": pd.to_datetime(["2019-12-31T21:00:00", "2019-12-31T23:00:00"])})
    assert only(check_contract(naive, aware)).examples == ["2019-12-31T21:00:00"]


def test_missing_column_is_a_failure() -> None:
    frame = pd.DataFrame({"a": [1]})
    failure = only(check_contract(frame, column("tenure", dtype="int", min=0)))
    assert (failure.column, failure.rule, failure.failing_rows) == ("tenure", "required", None)
    assert failure.message == "column 'tenure': missing from the data"


def test_strict_rejects_unknown_columns() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2], "c": [3]})
    assert check_contract(frame, contract(columns={"a": {}})).passed
    report = check_contract(frame, contract(columns={"a": {}}, strict=True))
    assert failures(report) == {("b", "strict"), ("c", "strict")}
    assert not report.passed


def test_row_count_bounds() -> None:
    frame = pd.DataFrame({"a": range(10)})
    assert check_contract(frame, contract(row_count={"min": 10, "max": 10})).passed
    low = only(check_contract(frame, contract(row_count={"min": 11})))
    assert (low.column, low.rule, low.observed) == (None, "row_count", 10)
    assert "at least 11" in low.message
    high = only(check_contract(frame, contract(row_count={"max": 9})))
    assert "at most 9" in high.message


def test_unique_column_sets() -> None:
    frame = pd.DataFrame(
        {
            "first": ["ann", "ann", "bob", "bob", None, None],
            "last": ["lee", "lee", "lee", "ray", "x", "x"],
            "id": [1, 2, 3, 4, 5, 6],
        }
    )
    assert check_contract(frame, contract(unique=["id", ["first", "id"]])).passed
    failure = only(check_contract(frame, contract(unique=[["first", "last"]])))
    assert (failure.column, failure.rule, failure.failing_rows) == ("first, last", "unique", 2)
    assert failure.examples == [{"first": "ann", "last": "lee"}]
    missing = check_contract(frame, contract(unique=[["first", "middle"]]))
    assert failures(missing) == {("middle", "required")}


# --- severities and reporting ------------------------------------------------------------------


def test_every_failure_is_reported_at_once() -> None:
    frame = pd.DataFrame(
        {
            "tenure_months": ["3", "x", "-1", None],
            "plan": ["basic", "gold", "pro", "pro"],
            "email": ["a@b", "nope", "c@d", "e@f"],
            "customer_id": [1, 2, 2, 3],
        }
    )
    report = check_contract(frame, parse_contract(yaml.safe_load(SPEC_YAML)))
    assert failures(report) == {
        ("tenure_months", "dtype"),
        ("tenure_months", "min"),
        ("tenure_months", "nullable"),
        ("plan", "values"),
        ("email", "pattern"),
        ("customer_id", "unique"),
        (None, "row_count"),
    }
    assert not report.passed
    assert [f.rule for f in report.warnings] == ["pattern"]
    assert report.failures[-1].severity == "warn"  # errors first


def test_warnings_alone_pass() -> None:
    frame = pd.DataFrame({"email": ["a@b", "nope"]})
    spec = column("email", dtype="str", pattern="^[^@]+@[^@]+$", severity="warn")
    report = check_contract(frame, spec)
    assert report.passed
    assert only(report).severity == "warn"
    raise_for_errors(report)  # warnings never raise


def test_severity_per_rule() -> None:
    frame = pd.DataFrame({"n": [-1, None]})
    spec = column("n", dtype="int", min=0, nullable=False, severity={"min": "warn"})
    report = check_contract(frame, spec)
    severities = {f.rule: f.severity for f in report.failures}
    assert severities == {"min": "warn", "nullable": "error"}
    assert not report.passed
    spec_warn_rows = contract(row_count={"min": 5, "severity": "warn"})
    assert check_contract(frame, spec_warn_rows).passed


def test_raise_for_errors_lists_every_error() -> None:
    frame = pd.DataFrame({"a": [-1, 2], "b": ["x", "y"]})
    spec = contract(
        columns={
            "a": {"dtype": "int", "min": 0},
            "b": {"values": ["x"]},
            "c": {},
            "d": {"pattern": "^x", "severity": "warn"},
        }
    )
    report = check_contract(frame, spec)
    with pytest.raises(ContractError) as caught:
        raise_for_errors(report)
    error = caught.value
    assert isinstance(error, DataError)
    lines = str(error).splitlines()
    assert lines[0] == "data broke its contract (3 errors):"
    assert len(lines) == 4
    for name in ("'a'", "'b'", "'c'"):
        assert sum(name in line for line in lines[1:]) == 1
    assert {f["column"] for f in error.failures} == {"a", "b", "c"}
    json.dumps(error.failures)  # JSON-ready


def test_report_is_json_serialisable() -> None:
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime(["2019-01-01", "2024-01-01"]),
            "n": np.array([np.int64(-5), np.int64(3)]),
        }
    )
    spec = contract(
        columns={"t": {"dtype": "datetime", "min": "2020-01-01"}, "n": {"min": 0, "unique": True}}
    )
    report = check_contract(frame, spec)
    data = json.loads(report.model_dump_json())
    assert {(f["column"], f["examples"][0]) for f in data["failures"]} == {
        ("t", "2019-01-01T00:00:00"),
        ("n", -5),
    }
    assert ContractReport.model_validate(data) == report


def test_render_contract_report() -> None:
    frame = pd.DataFrame({"a": [-1, 2], "email": ["x", "y@z"]})
    spec = contract(
        columns={
            "a": {"dtype": "int", "min": 0},
            "email": {"pattern": "@", "severity": "warn"},
        }
    )
    console = Console(width=200, record=True)
    console.print(render_contract_report(check_contract(frame, spec)))
    text = console.export_text()
    assert "Data contract failed" in text
    assert "min" in text and "pattern" in text and "warn" in text and "-1" in text
    console = Console(width=200, record=True)
    console.print(render_contract_report(check_contract(frame, contract())))
    text = console.export_text()
    assert "Data contract passed" in text and "every rule passed" in text


def test_check_does_not_change_the_frame(customers: pd.DataFrame) -> None:
    frame = customers.set_axis(range(500, 500 + len(customers)))
    before = frame.copy()
    report = check_contract(frame, column("tenure_months", dtype="int", min=200))
    # The customers' e-mail column is undeclared personal data: a warning besides.
    [failure] = report.errors
    assert failure.failing_rows == len(customers) - 1
    assert [(f.column, f.rule) for f in report.warnings] == [("email", "pii")]
    pd.testing.assert_frame_equal(frame, before)


def test_the_report_lists_every_rule_checked_with_its_outcome() -> None:
    contract = parse_contract(
        {
            "columns": {
                "id": {"dtype": "int", "unique": True},
                "score": {"dtype": "float", "min": 0, "severity": {"min": "warn"}},
            },
            "row_count": {"min": 1},
        }
    )
    df = pd.DataFrame({"id": [1, 2, 3], "score": [0.5, -1.0, 2.0]})
    report = check_contract(df, contract)
    outcome = {(r.column, r.rule): (r.passed, r.severity) for r in report.results}
    assert len(report.results) == report.rules_checked
    assert outcome[("score", "min")] == (False, "warn")
    assert outcome[("id", "unique")] == (True, "error")
    assert outcome[("id", "dtype")] == (True, "error")
    assert all(passed for (col, _), (passed, _) in outcome.items() if col != "score")
