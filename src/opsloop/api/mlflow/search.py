"""MLflow's search syntax: filter strings and ``order_by`` clauses, applied to plain rows.

A filter is clauses joined by ``AND``, each ``<entity>.<key> <op> <value>``: the entity is
``metrics``, ``params``, ``tags`` or ``attributes`` (``attribute``/``run``/none too), the key
may be quoted with backticks or quotes, the op is one of ``= != > >= < <= LIKE ILIKE IN
NOT IN`` and the value a number, a quoted string or a parenthesised list of them. A row is a
function from (entity, key) to its value, or None when it has none; a clause on a missing
value is false, as in MLflow.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opsloop.api.mlflow.protocol import MlflowError

__all__ = ["Clause", "Lookup", "matches", "parse_filter", "parse_order_by", "sort_rows"]

Lookup = Callable[[str, str], Any]
T = TypeVar("T")

_ENTITIES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
    "dataset": "datasets",
    "datasets": "datasets",
}
_IDENT = r"(?:`[^`]+`|\"[^\"]+\"|'[^']+'|[\w.\-/: ]+?)"
_VALUE = r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\([^)]*\)|[^\s()]+)"
_CLAUSE = re.compile(
    rf"^\s*(?:(?P<entity>\w+)\.)?(?P<key>{_IDENT})\s*"
    r"(?P<op>!=|>=|<=|=|>|<|(?i:not\s+in)|(?i:ilike)|(?i:like)|(?i:in))\s*"
    rf"(?P<value>{_VALUE})\s*$"
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Clause:
    """One ``<entity>.<key> <op> <value>`` comparison."""

    entity: str
    key: str
    op: str
    value: Any

    def holds(self, lookup: Lookup) -> bool:
        """Whether the row's value satisfies the clause (false when it has none)."""
        have = lookup(self.entity, self.key)
        if have is None:
            return False
        if self.op in ("like", "ilike"):
            flags = re.IGNORECASE if self.op == "ilike" else 0
            pattern = "".join(
                ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(self.value)
            )
            return re.fullmatch(pattern, str(have), flags | re.DOTALL) is not None
        if self.op in ("in", "not in"):
            inside = str(have) in [str(v) for v in self.value]
            return inside if self.op == "in" else not inside
        want = self.value
        if isinstance(want, float):
            try:
                have = float(have)
            except (TypeError, ValueError):
                return False
        else:
            have = str(have)
        try:
            return _COMPARE[self.op](have, want)
        except TypeError:
            return False


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`\"'":
        return text[1:-1].replace("\\" + text[0], text[0])
    return text


def _value(raw: str, entity: str, op: str) -> Any:
    if op in ("in", "not in"):
        if not (raw.startswith("(") and raw.endswith(")")):
            raise MlflowError(f"'{op.upper()}' needs a parenthesised list, got {raw!r}")
        return [_unquote(v) for v in raw[1:-1].split(",") if v.strip()]
    try:
        number = float(raw)
    except ValueError:
        if entity == "metrics":
            raise MlflowError(f"a metric is compared with a number, got {raw}") from None
        return _unquote(raw)
    return number if entity in ("metrics", "attributes") else raw


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of a filter string (none for an empty one)."""
    if text is None or not text.strip():
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        found = _CLAUSE.match(part)
        if found is None:
            raise MlflowError(f"Invalid filter '{text}': cannot read the clause '{part.strip()}'")
        entity = _ENTITIES.get((found["entity"] or "attributes").lower())
        if entity is None:
            raise MlflowError(f"Invalid filter '{text}': unknown entity '{found['entity']}'")
        op = " ".join(found["op"].lower().split())
        clauses.append(
            Clause(entity, _unquote(found["key"]), op, _value(found["value"], entity, op))
        )
    return clauses


def matches(clauses: list[Clause], lookup: Lookup) -> bool:
    """Whether a row satisfies every clause."""
    return all(c.holds(lookup) for c in clauses)


def parse_order_by(items: list[str] | None) -> list[tuple[str, str, bool]]:
    """``order_by`` clauses as (entity, key, ascending)."""
    out = []
    for item in items or []:
        words = item.strip().rsplit(None, 1)
        ascending = True
        field = item
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            ascending = words[1].lower() == "asc"
            field = words[0]
        entity, dot, key = field.strip().partition(".")
        if not dot:
            entity, key = "attributes", entity
        norm = _ENTITIES.get(entity.lower())
        if norm is None:
            raise MlflowError(f"Invalid order_by clause '{item}': unknown entity '{entity}'")
        out.append((norm, _unquote(key), ascending))
    return out


def sort_rows(
    rows: list[T], order: list[tuple[str, str, bool]], lookup: Callable[[T], Lookup]
) -> list[T]:
    """Rows sorted by each clause in turn; rows without the value go last either way."""
    for entity, key, ascending in reversed(order):
        present = [r for r in rows if lookup(r)(entity, key) is not None]
        missing = [r for r in rows if lookup(r)(entity, key) is None]

        def sort_key(r: T, entity: str = entity, key: str = key) -> tuple[int, Any]:
            v = lookup(r)(entity, key)
            return (0, v) if isinstance(v, (int, float)) else (1, str(v))

        rows = sorted(present, key=sort_key, reverse=not ascending) + missing
    return rows
