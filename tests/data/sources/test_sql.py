"""Database sources against the real PostgreSQL and MariaDB servers: full and incremental
loads, queries, and errors that never show the password."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from opsloop.data import content_digest
from opsloop.data.sources import load_source, probe_source, read_data
from opsloop.errors import DataError
from opsloop.spec.schema import DataSection

if TYPE_CHECKING:
    from opsloop.context import Project

MARIADB_URL = "mysql+pymysql://root:@127.0.0.1:3306/test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(start: int, n: int, *, at: datetime = T0) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "updated_at": at + timedelta(hours=i),
            "fee": 10.0 + i / 4,
            "plan": ["basic", "plus"][i % 2],
            "churned": i % 3,
        }
        for i in range(start, start + n)
    ]


def _insert(url: str, table: str, rows: list[dict[str, object]]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {table} (id, updated_at, fee, plan, churned) "
                "VALUES (:id, :updated_at, :fee, :plan, :churned)"
            ),
            rows,
        )
    engine.dispose()


@pytest.fixture
def pg_table(pg_database_url: str) -> str:
    engine = create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, "
                "updated_at TIMESTAMPTZ NOT NULL, fee DOUBLE PRECISION, plan TEXT, "
                "churned INTEGER)"
            )
        )
    engine.dispose()
    return pg_database_url


def _mariadb_reachable() -> str | None:
    try:
        engine = create_engine(MARIADB_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return str(exc)
    return None


@pytest.fixture
def mariadb_table() -> Iterator[str]:
    problem = _mariadb_reachable()
    if problem is not None:
        pytest.skip(f"MariaDB at 127.0.0.1:3306 unreachable: {problem}")
    name = f"customers_{uuid.uuid4().hex[:10]}"
    engine = create_engine(MARIADB_URL)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, updated_at DATETIME(6) NOT NULL, "
                "fee DOUBLE, plan VARCHAR(16), churned INTEGER)"
            )
        )
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def _section(**source: object) -> DataSection:
    return DataSection.model_validate({"name": "customers", "source": source})


def _read_all(url: str, table: str) -> pd.DataFrame:
    engine = create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(text(f"SELECT * FROM {table} ORDER BY updated_at"), conn)
    engine.dispose()
    return frame


def test_postgres_incremental_loads_read_only_new_rows(project: Project, pg_table: str) -> None:
    data = _section(url=pg_table, table="customers", watermark="updated_at")
    _insert(pg_table, "customers", _rows(0, 5))

    first = load_source(project, data)
    assert (first.record.rows, first.record.new_rows) == (5, 5)
    assert first.record.digest == content_digest(_read_all(pg_table, "customers"))
    assert first.record.details["incremental"] is False

    _insert(pg_table, "customers", _rows(5, 3))
    # A row behind the watermark is not new: an incremental load does not read it.
    _insert(pg_table, "customers", _rows(100, 1, at=T0 - timedelta(days=30)))
    second = load_source(project, data)
    assert (second.record.rows, second.record.new_rows) == (8, 3)
    assert second.changed
    assert second.record.details["incremental"] is True
    assert second.record.watermark is not None
    assert second.record.watermark["value"].startswith("2026-01-01T07:00:00")
    assert sorted(second.frame["id"]) == list(range(8))
    # The version is the union of the previous snapshot and the new rows.
    expected = _read_all(pg_table, "customers")
    expected = expected[expected["id"] != 100].reset_index(drop=True)
    assert second.record.digest == content_digest(expected)

    third = load_source(project, data)
    assert third.record.new_rows == 0
    assert not third.changed
    assert project.store.datasets.get(third.record.digest).row_count == 8
    assert read_data(project, data)["id"].tolist() == list(range(8))


def test_postgres_query_source_and_probe(project: Project, pg_table: str) -> None:
    data = _section(
        url=pg_table,
        query="SELECT id, updated_at, fee FROM customers WHERE plan = 'basic'",
        watermark="updated_at",
    )
    _insert(pg_table, "customers", _rows(0, 6))
    token = probe_source(project, data)
    load = load_source(project, data)
    assert load.frame["id"].tolist() == [0, 2, 4]
    assert list(load.frame.columns) == ["id", "updated_at", "fee"]
    assert probe_source(project, data) == token
    _insert(pg_table, "customers", _rows(6, 2))
    assert probe_source(project, data) != token
    again = load_source(project, data)
    assert again.record.new_rows == 1
    assert again.frame["id"].tolist() == [0, 2, 4, 6]


def test_postgres_full_reload_without_watermark(project: Project, pg_table: str) -> None:
    data = _section(url=pg_table, table="customers")
    _insert(pg_table, "customers", _rows(0, 4))
    first = load_source(project, data)
    _insert(pg_table, "customers", _rows(4, 2))
    second = load_source(project, data)
    assert (second.record.rows, second.record.new_rows) == (6, 2)
    assert second.record.watermark is None
    assert first.record.digest != second.record.digest


def test_mariadb_incremental_loads(project: Project, mariadb_table: str) -> None:
    data = _section(url=MARIADB_URL, table=mariadb_table, watermark="updated_at")
    naive = T0.replace(tzinfo=None)
    _insert(MARIADB_URL, mariadb_table, _rows(0, 4, at=naive))
    first = load_source(project, data)
    assert (first.record.rows, first.record.new_rows) == (4, 4)
    _insert(MARIADB_URL, mariadb_table, _rows(4, 2, at=naive))
    second = load_source(project, data)
    assert (second.record.rows, second.record.new_rows) == (6, 2)
    assert second.record.digest == content_digest(_read_all(MARIADB_URL, mariadb_table))


def test_secret_reference_url_and_errors_hide_the_password(
    project: Project, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "hunter2-not-shown"
    url = make_url(pg_table).set(password=password).render_as_string(hide_password=False)
    monkeypatch.setenv("WAREHOUSE_URL", url)
    data = _section(url="env:WAREHOUSE_URL", table="nowhere", watermark="updated_at")
    with pytest.raises(DataError, match="table 'nowhere' does not exist") as err:
        load_source(project, data)
    assert password not in str(err.value)

    literal = _section(url=url, table="customers", watermark="missing_column")
    with pytest.raises(DataError, match="column 'missing_column' is not in table") as err:
        load_source(project, literal)
    assert password not in str(err.value)

    _insert(pg_table, "customers", _rows(0, 2))
    load = load_source(project, _section(url="env:WAREHOUSE_URL", table="customers"))
    assert load.display == "env:WAREHOUSE_URL table=customers"
    assert password not in repr(_section(url=url, table="customers"))
    events = project.store.events.list(limit=50)
    assert all(password not in str(e.details) for e in events)


def test_unreachable_database_is_a_data_error(project: Project) -> None:
    data = _section(url="postgresql+psycopg://u:pw-secret@127.0.0.1:1/x", table="t")
    with pytest.raises(DataError, match="cannot read") as err:
        load_source(project, data)
    assert "pw-secret" not in str(err.value)
