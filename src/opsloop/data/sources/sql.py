"""Read a database table or query through SQLAlchemy, whole or past a watermark.

This is the one module of :mod:`opsloop.data` that imports SQLAlchemy: it reads the user's
own database (training data), never opsloop's metadata store. The URL's password never
appears in a message: every error goes through :func:`opsloop.redact.redact`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    create_engine,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from opsloop.errors import DataError, MissingDependencyError
from opsloop.redact import redact, redact_url

if TYPE_CHECKING:
    from sqlalchemy import Engine, Select

__all__ = ["max_watermark", "read_sql_source"]

_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres", "pymysql": "mysql"}


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DataError(f"data.source.url: {redact_url(url)} is not a database URL") from exc
    try:
        # No pool: a load opens one connection and is done with it.
        return create_engine(parsed, poolclass=NullPool)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        driver = parsed.get_driver_name()
        extra = _DRIVER_EXTRAS.get(driver)
        if extra is not None:
            raise MissingDependencyError(driver, extra) from exc
        raise DataError(
            f"data.source.url: no database driver for {parsed.drivername}",
            hint=f"install the {driver} driver",
        ) from exc


def _reason(exc: SQLAlchemyError, url: str) -> str:
    """The driver's own first line (SQLAlchemy's wrapper repeats the statement)."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines() or [type(exc).__name__]
    return redact(lines[0], url)


def _selectable(engine: Engine, table: str | None, query: str | None) -> Any:
    """The table (reflected) or the query as a subquery."""
    if table is not None:
        schema, _, name = table.rpartition(".")
        try:
            return Table(name, MetaData(), schema=schema or None, autoload_with=engine)
        except NoSuchTableError as exc:
            raise DataError(f"data.source.table: table '{table}' does not exist") from exc
    # A text query has no known columns; a subquery over it with a literal '*' lets the
    # watermark filter and MAX() be built by SQLAlchemy, which quotes the column's name.
    return select(literal_column("*")).select_from(text(f"({query}) AS source_query"))


def _column(sel: Any, name: str) -> Any:
    if isinstance(sel, Table):
        if name not in sel.c:
            known = ", ".join(c.name for c in sel.c)
            raise DataError(
                f"data.source.watermark: column '{name}' is not in table '{sel.name}'; "
                f"columns: {known}"
            )
        return sel.c[name]
    return Column(name)


def _statement(sel: Any, watermark: str | None, after: Any) -> Select[Any]:
    if isinstance(sel, Table):
        stmt: Select[Any] = select(sel)
    else:
        stmt = sel
    if watermark is not None:
        col = _column(sel, watermark)
        if after is not None:
            stmt = stmt.where(col > after)
        stmt = stmt.order_by(col)
    return stmt


def read_sql_source(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    watermark: str | None = None,
    after: Any = None,
) -> pd.DataFrame:
    """The rows of a table or query; with ``watermark`` and ``after``, only the rows whose
    watermark is greater than ``after``, ordered by it.

    Args:
        url: The SQLAlchemy URL (resolved: no secret reference).
        table: A table name (``schema.table`` allowed).
        query: A ``SELECT`` statement.
        watermark: The watermark column.
        after: The largest watermark value already read (None: read everything).

    Raises:
        DataError: The database cannot be reached, the table or column does not exist, or
            the query fails; the message masks the password.
        MissingDependencyError: The URL's driver is not installed.
    """
    engine = _engine(url)
    try:
        sel = _selectable(engine, table, query)
        stmt = _statement(sel, watermark, after)
        with engine.connect() as conn:
            return pd.read_sql(stmt, conn)
    except SQLAlchemyError as exc:
        raise DataError(
            f"data.source ({redact_url(url)}): cannot read "
            f"{'table ' + repr(table) if table else 'the query'}: " + _reason(exc, url)
        ) from None
    finally:
        engine.dispose()


def max_watermark(
    url: str, *, table: str | None = None, query: str | None = None, watermark: str
) -> Any:
    """The largest watermark value in the table or query (None when it is empty): a cheap
    way to tell whether new rows arrived.

    Raises:
        DataError: As :func:`read_sql_source`.
    """
    engine = _engine(url)
    try:
        sel = _selectable(engine, table, query)
        col = _column(sel, watermark)
        if isinstance(sel, Table):
            stmt = select(func.max(col))
        else:
            stmt = select(func.max(col)).select_from(sel.subquery("wm"))
        with engine.connect() as conn:
            return conn.execute(stmt).scalar()
    except SQLAlchemyError as exc:
        raise DataError(
            f"data.source ({redact_url(url)}): cannot read the watermark '{watermark}': "
            + _reason(exc, url)
        ) from None
    finally:
        engine.dispose()
