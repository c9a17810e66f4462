"""The lifecycle trains from a PostgreSQL table, loading only the new rows each time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine

from opsloop.context import Project, open_project, set_current_project
from opsloop.lifecycle import run_lifecycle
from tests.lifecycle.test_lifecycle import base_spec, make_frame


def _frame(start: int, n: int, seed: int) -> pd.DataFrame:
    frame = make_frame(n, seed=seed)
    frame["customer_id"] = [f"c{i:05d}" for i in range(start, start + n)]
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    frame["updated_at"] = [t0 + timedelta(minutes=i) for i in range(start, start + n)]
    return frame


@pytest.fixture
def warehouse_project(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    monkeypatch.setenv("WAREHOUSE_URL", pg_database_url)
    spec = base_spec(
        data={
            "name": "customers",
            "source": {"url": "env:WAREHOUSE_URL", "table": "customers", "watermark": "updated_at"},
        },
        features={"drop": ["customer_id", "updated_at"]},
    )
    (tmp_path / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    project = open_project(tmp_path)
    set_current_project(project)
    try:
        yield project
    finally:
        project.close()
        set_current_project(None)


def _append(url: str, frame: pd.DataFrame) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        frame.to_sql("customers", conn, if_exists="append", index=False)
    engine.dispose()


@pytest.mark.slow
def test_lifecycle_trains_from_a_postgres_table_incrementally(
    warehouse_project: Project, pg_database_url: str
) -> None:
    _append(pg_database_url, _frame(0, 400, seed=1))
    first = run_lifecycle(warehouse_project, executor="inline", progress=False)
    assert first.succeeded, first.error
    dataset = first.outputs["ingest"]
    assert dataset["rows"] == 400
    assert dataset["source"] == "env:WAREHOUSE_URL table=customers"
    assert first.steps["ingest"] == "succeeded"

    _append(pg_database_url, _frame(400, 200, seed=2))
    second = run_lifecycle(warehouse_project, executor="inline", progress=False)
    assert second.succeeded, second.error
    assert second.outputs["ingest"]["rows"] == 600
    assert second.steps["ingest"] == "succeeded"
    load = warehouse_project.store.sources.latest("customers")
    assert load is not None
    assert (load.rows, load.new_rows, load.details["incremental"]) == (600, 200, True)
    assert load.digest == second.outputs["ingest"]["digest"]
    versions = warehouse_project.store.models.list_versions("lc")
    assert sorted(v.version for v in versions) == [1, 2]

    # Nothing new: the same snapshot, so the ingest step comes from the cache.
    third = run_lifecycle(warehouse_project, executor="inline", progress=False)
    assert third.succeeded, third.error
    assert third.steps["ingest"] == "cached"
