"""A small data pipeline for the lineage tests (importable, so workers can find it)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from opsloop.data import check_contract, dataset_version, parse_contract
from opsloop.pipeline import pipeline, step

CONTRACT: dict[str, Any] = {
    "columns": {
        "id": {"dtype": "int", "unique": True},
        "amount": {"dtype": "float", "min": 0},
        "kind": {"dtype": "str", "values": ["a", "b"]},
    }
}


@step(outputs=("data", "dataset"))
def load(rows: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    df = pd.DataFrame(
        {
            "id": list(range(rows)),
            "amount": [float(i) * 1.5 for i in range(rows)],
            "kind": ["a" if i % 3 else "c" for i in range(rows)],
        }
    )
    version = dataset_version(df, source="data/orders.csv", files=[])
    return df, version.model_dump(mode="json")


@step
def check(data: pd.DataFrame, contract: dict[str, Any]) -> dict[str, Any]:
    return check_contract(data, parse_contract(contract)).model_dump(mode="json")


@step
def double(data: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
    return data.assign(amount=data["amount"] * 2)


@step
def summarise(data: pd.DataFrame, fail: bool) -> dict[str, Any]:
    if fail:
        raise ValueError("the summary broke on purpose")
    return {"rows": len(data), "total": float(data["amount"].sum())}


@step
def publish(summary: dict[str, Any]) -> str:
    return f"{summary['rows']} rows"


@pipeline(name="orders")
def orders(rows: int = 12, fail: bool = False) -> None:
    data, _dataset = load(rows=rows)
    report = check(data, contract=CONTRACT)
    doubled = double(data, report)
    summary = summarise(doubled, fail=fail)
    publish(summary)
