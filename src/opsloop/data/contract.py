"""Data contracts: the ``contract:`` section of ``opsloop.yaml``, checked with pandera.

A :class:`DataContract` is turned into a pandera ``DataFrameSchema`` whose every check is named
after the contract rule it enforces; the schema is validated lazily so that every rule runs, and
pandera's failure cases are folded into one :class:`ContractFailure` per column and rule.

Column types are *logical*: ``int`` accepts an integer column, a float column whose values are
whole numbers (how CSV and pandas store integers with gaps) and text holding integers; ``str``
accepts text only; ``datetime`` accepts datetimes and ISO 8601 text. A value that does not fit
the type fails the ``dtype`` rule and is skipped by the value rules (``min``, ``max``,
``values``, ``pattern``), so one bad value is reported once.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rich.table import Table
from rich.text import Text

from opsloop.data.pii import PiiColumn, detect_pii
from opsloop.errors import ContractError, SpecError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ColumnContract",
    "ContractFailure",
    "ContractReport",
    "DataContract",
    "Dtype",
    "RowCountRule",
    "RuleResult",
    "Severity",
    "UniqueRule",
    "check_contract",
    "parse_contract",
    "raise_for_errors",
    "render_contract_report",
]

Severity = Literal["error", "warn"]
Dtype = Literal["int", "float", "str", "category", "bool", "datetime"]
ColumnRule = Literal[
    "required",
    "dtype",
    "min",
    "max",
    "values",
    "nullable",
    "unique",
    "pattern",
    "max_null_fraction",
]
Bound = int | float | datetime | date
Scalar = str | int | float | bool | None
Example = Scalar | dict[str, Scalar]

_MAX_EXAMPLES = 5
_NUMERIC_KINDS = frozenset({"int", "float"})
_TEXT_KINDS = frozenset({"str", "category"})
_TRUE = frozenset({"true", "t", "yes"})
_FALSE = frozenset({"false", "f", "no"})


class ColumnContract(BaseModel):
    """Rules for one column.

    ``severity`` is either one level for every rule of the column, or a mapping from rule
    name to level (rules not named are errors).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Dtype | None = None
    min: Bound | None = None
    max: Bound | None = None
    values: list[str | int | float | bool] | None = None
    nullable: bool = True
    unique: bool = False
    pattern: str | None = None
    max_null_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    pii: bool = False
    severity: Severity | dict[ColumnRule, Severity] = "error"

    @field_validator("min", "max")
    @classmethod
    def _dates_are_datetimes(cls, value: Bound | None) -> Bound | None:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("values")
    @classmethod
    def _values_not_empty(
        cls, value: list[str | int | float | bool] | None
    ) -> list[str | int | float | bool] | None:
        if value is not None and not value:
            raise ValueError("must list at least one value")
        return value

    @model_validator(mode="after")
    def _rules_fit_dtype(self) -> ColumnContract:
        kind = self.dtype
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is None:
                continue
            is_time = isinstance(bound, datetime)
            if kind in _TEXT_KINDS or kind == "bool":
                raise ValueError(f"'{name}' does not apply to dtype {kind}")
            if kind == "datetime" and not is_time:
                raise ValueError(f"'{name}' of a datetime column must be a date or time")
            if kind in _NUMERIC_KINDS and is_time:
                raise ValueError(f"'{name}' of a {kind} column must be a number")
        if (
            self.min is not None
            and self.max is not None
            and isinstance(self.min, datetime) == isinstance(self.max, datetime)
            and _gt(self.min, self.max)
        ):
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.pattern is not None and kind not in (None, *_TEXT_KINDS):
            raise ValueError(f"'pattern' does not apply to dtype {kind}")
        return self

    def severity_of(self, rule: str) -> Severity:
        """The severity of ``rule`` for this column."""
        if isinstance(self.severity, str):
            return self.severity
        for name, level in self.severity.items():
            if name == rule:
                return level
        return "error"


class RowCountRule(BaseModel):
    """Bounds on the number of rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "error"

    @model_validator(mode="after")
    def _ordered(self) -> RowCountRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class UniqueRule(BaseModel):
    """A set of columns whose combined values must be unique (rows with a null are skipped).

    In YAML an entry of ``unique:`` may be a column name, a list of names, or a mapping with
    ``columns`` and ``severity``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = Field(min_length=1)
    severity: Severity = "error"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"columns": [data]}
        if isinstance(data, list | tuple):
            return {"columns": list(data)}
        return data


class DataContract(BaseModel):
    """The ``contract:`` section of ``opsloop.yaml``.

    Attributes:
        columns: Rules per column; every column named here must be present.
        row_count: Bounds on the number of rows.
        unique: Column sets that must be unique together.
        strict: When true, columns not named in ``columns`` are failures.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, ColumnContract] = Field(default_factory=dict)
    row_count: RowCountRule | None = None
    unique: list[UniqueRule] = Field(default_factory=list)
    strict: bool = False


class ContractFailure(BaseModel):
    """One rule that failed, for one column (or for the whole table)."""

    model_config = ConfigDict(frozen=True)

    column: str | None = Field(description="The column, or None for table rules.")
    rule: str = Field(description="dtype, min, max, values, nullable, unique, pattern, ...")
    severity: Severity
    failing_rows: int | None = Field(
        description="Rows that break the rule; None for rules about the table or column as a whole."
    )
    examples: list[Example] = Field(default_factory=list, description="Up to 5 failing values.")
    observed: float | int | None = Field(
        default=None, description="The measured value of an aggregate rule (rows, null fraction)."
    )
    message: str


class RuleResult(BaseModel):
    """One rule that was checked, and whether it held."""

    model_config = ConfigDict(frozen=True)

    column: str | None = Field(description="The column, or None for table rules.")
    rule: str
    severity: Severity
    passed: bool


class ContractReport(BaseModel):
    """The outcome of :func:`check_contract`."""

    model_config = ConfigDict(frozen=True)

    passed: bool = Field(description="False only when an error-severity rule failed.")
    rows: int
    rules_checked: int
    failures: list[ContractFailure] = Field(default_factory=list)
    pii: list[PiiColumn] = Field(
        default_factory=list,
        description="Columns holding personal data: tagged pii: true, or detected.",
    )
    results: list[RuleResult] = Field(
        default_factory=list, description="Every rule checked, passed or not, in order."
    )

    @property
    def errors(self) -> list[ContractFailure]:
        """Failures of error severity."""
        return [failure for failure in self.failures if failure.severity == "error"]

    @property
    def warnings(self) -> list[ContractFailure]:
        """Failures of warn severity."""
        return [failure for failure in self.failures if failure.severity == "warn"]


def parse_contract(data: Mapping[str, Any], *, file: str | None = None) -> DataContract:
    """Validate a ``contract:`` mapping, raising :class:`SpecError` naming the field.

    Args:
        data: The mapping, as loaded from YAML.
        file: The document it came from, for the message.
    """
    try:
        return DataContract.model_validate(data)
    except ValidationError as exc:
        found = [(_field_path(error["loc"]), error["msg"]) for error in exc.errors()]
        # A union reports one error per member; the deepest one is the most specific.
        path, message = max(found, key=lambda item: len(item[0]))
        others = {p for p, _ in found if p != path[: len(p)]}
        suffix = f" (and {len(others)} more)" if others else ""
        field = ".".join(["contract", *path])
        raise SpecError(f"{message}{suffix}", file=file, field=field) from exc


_UNION_TAGS = frozenset({"int", "float", "str", "bool", "datetime", "date"})


def _field_path(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The user's field path from a pydantic error location, without union member tags."""
    path: list[str] = []
    previous: int | str | None = None
    for part in loc:
        tag = isinstance(part, str) and (
            "[" in part
            or (part in _UNION_TAGS and (previous in {"min", "max"} or isinstance(previous, int)))
        )
        if not tag:
            path.append(str(part))
        previous = part
    return tuple(path)


# --- checking ----------------------------------------------------------------------------------


class _Rule:
    """What a named pandera check stands for."""

    __slots__ = ("column", "rule", "severity")

    def __init__(self, column: str | None, rule: str, severity: Severity) -> None:
        self.column = column
        self.rule = rule
        self.severity = severity


def check_contract(df: pd.DataFrame, contract: DataContract) -> ContractReport:
    """Check ``df`` against ``contract``, running every rule.

    Args:
        df: The data.
        contract: The contract.

    Returns:
        A report with one failure per column and rule that failed; ``passed`` is False only
        when an error-severity rule failed.
    """
    # Failure cases name rows by index label; positions keep them distinct and meaningful.
    df = df.reset_index(drop=True)
    builder = _SchemaBuilder(df, contract)
    schema = builder.build()
    failures: list[ContractFailure] = []
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = builder.failures(exc.failure_cases)
    declared = [name for name, spec in contract.columns.items() if spec.pii]
    pii = detect_pii(df, declared=declared)
    # Personal data the contract does not declare is a warning: tag it, or drop the column.
    failures.extend(
        ContractFailure(
            column=found.column,
            rule="pii",
            severity="warn",
            failing_rows=None,
            observed=found.share,
            message=f"looks like personal data ({found.kind}) but is not tagged pii: true",
        )
        for found in pii
        if found.kind != "declared"
    )
    failures.sort(key=lambda f: (f.severity != "error", f.column or "", f.rule))
    failed = {(f.column, f.rule) for f in failures}
    results = [
        RuleResult(
            column=rule.column,
            rule=rule.rule,
            severity=rule.severity,
            passed=(rule.column, rule.rule) not in failed,
        )
        for rule in builder.rules.values()
    ]
    return ContractReport(
        passed=not any(failure.severity == "error" for failure in failures),
        rows=len(df),
        rules_checked=builder.rule_count,
        failures=failures,
        pii=pii,
        results=results,
    )


def raise_for_errors(report: ContractReport) -> None:
    """Raise :class:`ContractError` listing every error-severity failure of ``report``.

    Warnings never raise. The error's ``failures`` holds the failures as JSON-ready dicts.
    """
    errors = report.errors
    if not errors:
        return
    lines = [f"data broke its contract ({len(errors)} error{'s' if len(errors) > 1 else ''}):"]
    lines += [f"  {failure.message}" for failure in errors]
    raise ContractError(
        "\n".join(lines), failures=[failure.model_dump(mode="json") for failure in errors]
    )


def render_contract_report(report: ContractReport) -> Table:
    """Render ``report`` as a rich table, errors first."""
    status = "[green]passed[/]" if report.passed else "[red]failed[/]"
    table = Table(
        title=f"Data contract {status}",
        caption=(
            f"{report.rows} rows, {report.rules_checked} rules checked, "
            f"{len(report.errors)} errors, {len(report.warnings)} warnings"
        ),
    )
    table.add_column("severity")
    table.add_column("column")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    table.add_column("examples")
    table.add_column("message", overflow="fold")
    for failure in report.failures:
        style = "red" if failure.severity == "error" else "yellow"
        table.add_row(
            Text(failure.severity, style=style),
            failure.column or "(table)",
            failure.rule,
            "" if failure.failing_rows is None else str(failure.failing_rows),
            ", ".join(_show(example) for example in failure.examples),
            failure.message,
        )
    if not report.failures:
        table.add_row(Text("ok", style="green"), "", "", "", "", "every rule passed")
    return table


class _SchemaBuilder:
    """Builds the pandera schema for one check and maps its failure cases back to rules."""

    def __init__(self, df: pd.DataFrame, contract: DataContract) -> None:
        self.df = df
        self.contract = contract
        self.rules: dict[tuple[str | None, str], _Rule] = {}
        self.rule_count = 0
        self._converted: dict[str, pd.Series] = {}

    # building

    def build(self) -> pa.DataFrameSchema:
        columns: dict[str, pa.Column] = {}
        for name, spec in self.contract.columns.items():
            columns[name] = self._column(name, spec)
        checks: list[pa.Check] = []
        for position, unique in enumerate(self.contract.unique):
            key = f"unique:{position}"
            self._register(None, key, _Rule(None, "unique", unique.severity))
            checks.append(pa.Check(_unique_rows(unique.columns), name=key, ignore_na=False))
            for name in unique.columns:
                if name not in columns:
                    # Ask pandera to report a missing column of the set like any other.
                    columns[name] = pa.Column(None, nullable=True, required=True, name=name)
                    self._register(name, "required", _Rule(name, "required", unique.severity))
        if self.contract.row_count is not None:
            rule = self.contract.row_count
            self._register(None, "row_count", _Rule(None, "row_count", rule.severity))
            checks.append(pa.Check(_row_count(rule.min, rule.max), name="row_count"))
        if self.contract.strict:
            self._register(None, "strict", _Rule(None, "strict", "error"))
        return pa.DataFrameSchema(columns, checks=checks, strict=self.contract.strict)

    def _register(self, column: str | None, key: str, rule: _Rule) -> None:
        self.rules[(column, key)] = rule
        self.rule_count += 1

    def _column(self, name: str, spec: ColumnContract) -> pa.Column:
        kind = spec.dtype
        checks: list[pa.Check] = []

        def add(rule: str, fn: Callable[[pd.Series], Any], ignore_na: bool = True) -> None:
            self._register(name, rule, _Rule(name, rule, spec.severity_of(rule)))
            checks.append(pa.Check(fn, name=rule, ignore_na=ignore_na))

        self._register(name, "required", _Rule(name, "required", spec.severity_of("required")))
        if kind is not None:
            add("dtype", lambda s: _conforms(s, kind, self._converted_values))
        if spec.min is not None:
            low = spec.min
            add("min", lambda s: self._compare(s, kind, low, ge=True))
        if spec.max is not None:
            high = spec.max
            add("max", lambda s: self._compare(s, kind, high, ge=False))
        if spec.values is not None:
            allowed = spec.values
            add("values", lambda s: self._isin(s, kind, allowed))
        if spec.pattern is not None:
            regex = spec.pattern
            add("pattern", lambda s: _matches(s, regex))
        if spec.max_null_fraction is not None:
            limit = spec.max_null_fraction
            add(
                "max_null_fraction",
                lambda s: len(s) == 0 or bool(s.isna().mean() <= limit),
                ignore_na=False,
            )
        if not spec.nullable:
            self._register(name, "nullable", _Rule(name, "nullable", spec.severity_of("nullable")))
        if spec.unique:
            self._register(name, "unique", _Rule(name, "unique", spec.severity_of("unique")))
        return pa.Column(
            None,
            checks=checks,
            nullable=spec.nullable,
            unique=spec.unique,
            required=True,
            name=name,
        )

    def _converted_values(self, series: pd.Series, kind: Dtype | None) -> pd.Series:
        key = f"{series.name}\0{kind}"
        if key not in self._converted:
            self._converted[key] = _convert(series, kind)
        return self._converted[key]

    def _compare(self, series: pd.Series, kind: Dtype | None, bound: Bound, *, ge: bool) -> Any:
        values = self._converted_values(
            series, "datetime" if isinstance(bound, datetime) else kind or "float"
        )
        if isinstance(bound, datetime):
            limit: Any = _align_time(pd.Timestamp(bound), values)
        else:
            limit = bound
        result = values >= limit if ge else values <= limit
        # Values the type rule rejects are not this rule's concern.
        return _as_mask(result, values.isna())

    def _isin(
        self, series: pd.Series, kind: Dtype | None, allowed: list[str | int | float | bool]
    ) -> Any:
        if kind in {"int", "float", "bool", "datetime"}:
            values = self._converted_values(series, kind)
            if kind == "datetime":
                targets: Any = pd.to_datetime(pd.Series(allowed), errors="coerce")
            else:
                targets = allowed
            return _as_mask(values.isin(targets), values.isna())
        return _as_mask(series.isin(allowed), series.isna())

    # reading failures

    def failures(self, cases: pd.DataFrame) -> list[ContractFailure]:
        out: list[ContractFailure] = []
        table_level = cases["schema_context"] == "DataFrameSchema"
        for check, group in cases[table_level].groupby("check", sort=False, dropna=False):
            out += self._table_failures(str(check), group)
        column_cases = cases[~table_level]
        for (column, check), group in column_cases.groupby(
            ["column", "check"], sort=False, dropna=False
        ):
            out.append(self._column_failure(str(column), str(check), group))
        return out

    def _table_failures(self, check: str, group: pd.DataFrame) -> list[ContractFailure]:
        if check == "column_in_dataframe":
            return [self._missing(str(name)) for name in group["failure_case"].unique()]
        if check == "column_in_schema":
            return [
                ContractFailure(
                    column=str(name),
                    rule="strict",
                    severity="error",
                    failing_rows=None,
                    message=f"column '{name}': not in the contract, and the contract is strict",
                )
                for name in group["failure_case"].unique()
            ]
        rule = self.rules.get((None, check))
        if rule is None:
            return [_unexpected(None, check, group)]
        if rule.rule == "row_count":
            spec = self.contract.row_count
            assert spec is not None
            bounds = []
            if spec.min is not None:
                bounds.append(f"at least {spec.min}")
            if spec.max is not None:
                bounds.append(f"at most {spec.max}")
            return [
                ContractFailure(
                    column=None,
                    rule="row_count",
                    severity=rule.severity,
                    failing_rows=None,
                    observed=len(self.df),
                    message=f"row count {len(self.df)}: must be {' and '.join(bounds)}",
                )
            ]
        # A set of columns that must be unique together.
        position = int(check.split(":", 1)[1])
        columns = self.contract.unique[position].columns
        index = pd.unique(group["index"].dropna())
        if len(index) == 0:
            return [_unexpected(None, check, group)]
        rows = self.df.loc[index[: _MAX_EXAMPLES * 2], columns].drop_duplicates()
        examples: list[Example] = []
        for record in rows.head(_MAX_EXAMPLES).to_dict("records"):
            values = {str(k): _scalar(v) for k, v in record.items()}
            examples.append(values if len(columns) > 1 else next(iter(values.values())))
        label = ", ".join(columns)
        return [
            ContractFailure(
                column=label,
                rule="unique",
                severity=rule.severity,
                failing_rows=len(index),
                examples=examples,
                message=(
                    f"unique columns ({label}): {len(index)} rows share their values with"
                    f" another row (e.g. {_listing(examples)})"
                ),
            )
        ]

    def _missing(self, name: str) -> ContractFailure:
        rule = self.rules.get((name, "required"))
        severity: Severity = rule.severity if rule is not None else "error"
        return ContractFailure(
            column=name,
            rule="required",
            severity=severity,
            failing_rows=None,
            message=f"column '{name}': missing from the data",
        )

    def _column_failure(self, column: str, check: str, group: pd.DataFrame) -> ContractFailure:
        key = {"not_nullable": "nullable", "field_uniqueness": "unique"}.get(check, check)
        rule = self.rules.get((column, key))
        if rule is None:
            return _unexpected(column, check, group)
        if rule.rule == "max_null_fraction":
            nulls = int(self.df[column].isna().sum())
            fraction = nulls / len(self.df) if len(self.df) else 0.0
            limit = self.contract.columns[column].max_null_fraction
            return ContractFailure(
                column=column,
                rule=rule.rule,
                severity=rule.severity,
                failing_rows=nulls,
                observed=round(fraction, 6),
                message=(
                    f"column '{column}': {fraction:.2%} of values are null,"
                    f" more than max_null_fraction {limit}"
                ),
            )
        index = group["index"].dropna()
        if index.empty:
            return _unexpected(column, check, group)
        count = int(index.nunique())
        examples = _examples(group["failure_case"])
        what = _describe(rule.rule, self.contract.columns.get(column))
        message = f"column '{column}': {count} row{'s' if count != 1 else ''} {what}"
        if examples and rule.rule != "nullable":
            message += f" (e.g. {_listing(examples)})"
        return ContractFailure(
            column=column,
            rule=rule.rule,
            severity=rule.severity,
            failing_rows=count,
            examples=examples if rule.rule != "nullable" else [],
            message=message,
        )


def _unexpected(column: str | None, check: str, group: pd.DataFrame) -> ContractFailure:
    """A failure pandera reported without rows: a check that raised instead of answering."""
    where = f"column '{column}'" if column else "table"
    detail = _show(_scalar(group["failure_case"].iloc[0]))
    return ContractFailure(
        column=column,
        rule=check,
        severity="error",
        failing_rows=None,
        message=f"{where}: rule '{check}' could not be checked: {detail}",
    )


def _describe(rule: str, spec: ColumnContract | None) -> str:
    """What failing rows did, phrased to follow a row count ("3 rows ...")."""
    if spec is None:
        return f"break rule '{rule}'"
    match rule:
        case "dtype":
            return f"not of dtype {spec.dtype}"
        case "min":
            return f"below min {_bound(spec.min)}"
        case "max":
            return f"above max {_bound(spec.max)}"
        case "values":
            return f"not one of {_listing([_scalar(v) for v in spec.values or []])}"
        case "nullable":
            return "null in a column that is not nullable"
        case "unique":
            return "with a value that another row also has (must be unique)"
        case "pattern":
            return f"not matching pattern {spec.pattern!r}"
    return f"breaking rule '{rule}'"


def _bound(value: Bound | None) -> str:
    if isinstance(value, datetime) and value == datetime(value.year, value.month, value.day):
        return value.date().isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- value handling ----------------------------------------------------------------------------


def _gt(left: Bound, right: Bound) -> bool:
    return bool(left > right)  # type: ignore[operator]


def _as_mask(result: Any, skip: pd.Series) -> pd.Series:
    series = pd.Series(result, index=skip.index)
    if series.dtype != bool:
        series = series.astype("boolean").fillna(True).astype(bool)
    return series | skip.to_numpy()


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
        series.dtype
    )


def _element_mask(series: pd.Series, test: Callable[[Any], bool]) -> pd.Series:
    return series.map(lambda v: v is None or _is_null(v) or test(v)).astype(bool)


def _is_null(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _conforms(
    series: pd.Series, kind: Dtype, convert: Callable[[pd.Series, Dtype | None], pd.Series]
) -> pd.Series:
    """True where a value fits the logical type ``kind`` (nulls are left to ``nullable``).

    ``convert`` is :func:`_convert` or a cached form of it.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if kind == "category":
            return pd.Series(True, index=series.index)
        series = series.astype(object)
        dtype = series.dtype
    missing = series.isna()
    if kind in {"int", "float"}:
        if pd.api.types.is_bool_dtype(dtype):
            return missing
        values = convert(series, kind)
        return values.notna() | missing
    if kind == "bool":
        if pd.api.types.is_bool_dtype(dtype):
            return pd.Series(True, index=series.index)
        return convert(series, "bool").notna() | missing
    if kind == "datetime":
        return convert(series, "datetime").notna() | missing
    if kind == "str":
        if _is_text(series):
            return pd.Series(True, index=series.index)
        if pd.api.types.is_object_dtype(dtype):
            return _element_mask(series, lambda v: isinstance(v, str))
        return missing
    # category: text, whole numbers or booleans; not fractional numbers or times.
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(np.isnan(values) | (values == np.floor(values)), index=series.index)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return missing
    if pd.api.types.is_object_dtype(dtype):
        return _element_mask(
            series, lambda v: isinstance(v, str | bool | int | np.integer | np.bool_)
        )
    return pd.Series(True, index=series.index)


def _convert(series: pd.Series, kind: Dtype | None) -> pd.Series:
    """``series`` as values of ``kind``; values that do not fit become null."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    dtype = series.dtype
    if kind in {"int", "float", None}:
        if pd.api.types.is_bool_dtype(dtype):
            return pd.Series(np.nan, index=series.index)
        if pd.api.types.is_numeric_dtype(dtype):
            values = series.astype("float64")
        else:
            values = pd.to_numeric(series, errors="coerce").astype("float64")
        if kind == "int":
            whole = values == np.floor(values)
            values = values.where(whole & np.isfinite(values))
        return values
    if kind == "bool":
        if pd.api.types.is_bool_dtype(dtype):
            return series.astype("boolean")
        return series.map(_to_bool).astype("boolean")
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return series
        if not (_is_text(series) or pd.api.types.is_object_dtype(dtype)):
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
        try:
            return pd.to_datetime(series, errors="coerce", format="ISO8601")
        except (TypeError, ValueError):
            # Mixed UTC offsets cannot share one naive column; bring them to UTC.
            return pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)
    return series


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def _align_time(bound: pd.Timestamp, values: pd.Series) -> pd.Timestamp:
    tz = getattr(values.dtype, "tz", None)
    if tz is not None and bound.tzinfo is None:
        return bound.tz_localize(tz)
    if tz is None and bound.tzinfo is not None:
        return bound.tz_convert("UTC").tz_localize(None)
    return bound


def _matches(series: pd.Series, pattern: str) -> pd.Series:
    """True where a text value contains a match of ``pattern`` (anchor it with ^...$)."""
    compiled = re.compile(pattern)
    if _is_text(series):
        try:
            return series.str.contains(pattern, regex=True, na=True).astype(bool)
        except ValueError:
            # Arrow-backed text uses RE2, which lacks some of Python's syntax (lookarounds,
            # backreferences); Python's engine accepted the pattern, so let it decide.
            pass
        return (
            series.map(lambda v: compiled.search(v) is not None, na_action="ignore")
            .fillna(True)
            .astype(bool)
        )
    if pd.api.types.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
        return series.map(
            lambda v: not isinstance(v, str) or compiled.search(v) is not None
        ).astype(bool)
    # A column without a declared type: match the values' text.
    return series.astype(str).str.contains(compiled, regex=True).astype(bool) | series.isna()


def _unique_rows(columns: list[str]) -> Callable[[pd.DataFrame], Any]:
    def check(frame: pd.DataFrame) -> Any:
        if any(name not in frame.columns for name in columns):
            return True  # the missing column is reported on its own
        subset = frame[columns]
        return ~subset.duplicated(keep=False) | subset.isna().any(axis=1)

    return check


def _row_count(low: int | None, high: int | None) -> Callable[[pd.DataFrame], bool]:
    def check(frame: pd.DataFrame) -> bool:
        rows = len(frame)
        return (low is None or rows >= low) and (high is None or rows <= high)

    return check


def _scalar(value: Any) -> Scalar:
    """A JSON-ready form of one cell value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    return str(value)


def _examples(values: pd.Series) -> list[Example]:
    try:
        values = values.drop_duplicates()
    except TypeError:
        values = values.head(1000)  # unhashable cells: look at the first ones only
    seen: list[Example] = []
    for value in values:
        item = _scalar(value)
        if item not in seen:
            seen.append(item)
        if len(seen) == _MAX_EXAMPLES:
            break
    return seen


def _show(value: Example) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + ")"
    if isinstance(value, str):
        return repr(value)
    return "null" if value is None else str(value)


def _listing(values: list[Example]) -> str:
    return ", ".join(_show(value) for value in values)
