"""Data sources beyond files, the data SLAs of a source, and schedules.

    data:
      name: customers
      source:                          # a database table (or query:) through SQLAlchemy
        url: env:WAREHOUSE_URL         # postgresql+psycopg://…, mysql+pymysql://…
        table: customers
        watermark: updated_at          # incremental loads: only rows past the last value
      sla:
        freshness: 24h                 # new rows within 24 hours
        volume: 0.3                    # rows of the last day within ±30 % of the 7-day median

    schedules:
      nightly: {cron: "0 3 * * *", missed: catch-up}
      fresh-data: {new_data: true, check_every: 5m, concurrency: forbid}
      heal-drift: {incident: data_drift, concurrency: replace}

An HTTP JSON API is a source too (``url: https://…`` with ``records:`` and ``pagination:``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from opsloop.names import check_name
from opsloop.redact import redact_url
from opsloop.spec.monitoring import Duration

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DataSla",
    "DataSource",
    "HttpSource",
    "ScheduleSpec",
    "SqlSource",
    "TableSource",
    "source_kind",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SqlSource(_Section):
    """A database table or query, read through SQLAlchemy.

    Attributes:
        kind: ``sql`` (may be left out).
        url: A SQLAlchemy URL, or a secret reference to one (``env:NAME``, ``file:PATH``).
        table: A table (``schema.table`` allowed); exactly one of ``table`` and ``query``.
        query: A ``SELECT`` whose rows are the data.
        watermark: A column that grows with every new row (a timestamp or an id): each load
            reads only the rows past the largest value seen, and the version is the union.
    """

    kind: Literal["sql"] = "sql"
    url: str = Field(min_length=1)
    table: str | None = Field(default=None, min_length=1)
    query: str | None = Field(default=None, min_length=1)
    watermark: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("a database source needs exactly one of 'table' and 'query'")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", redact_url(self.url)
        yield "table", self.table
        yield "query", self.query
        yield "watermark", self.watermark


class HttpSource(_Section):
    """An HTTP JSON API that returns records, page by page.

    Attributes:
        kind: ``http`` (may be left out when ``url`` starts with ``http``).
        url: The first page's URL (a secret reference allowed).
        records: Dotted path of the list of records in a page (``data.items``); empty: the
            page itself is the list.
        pagination: ``none``; ``next_link``: the page names the next page's URL at ``next``
            (absolute or relative); ``page``: ``page_param`` counts 1, 2, … until a page has
            no records; ``cursor``: the page names a cursor at ``next``, sent back as
            ``cursor_param``.
        next: Dotted path of the next link or cursor in a page.
        page_param: Query parameter of the page number.
        cursor_param: Query parameter of the cursor.
        headers: Request headers; values may be secret references (``env:API_TOKEN``).
        max_pages: Most pages read in one load (a guard against a cursor that loops).
        watermark: A field that grows with every new record: a load keeps only the records
            past the largest value seen.
    """

    kind: Literal["http"] = "http"
    url: str = Field(min_length=1)
    records: str = ""
    pagination: Literal["none", "next_link", "page", "cursor"] = "none"
    next: str = "next"
    page_param: str = "page"
    cursor_param: str = "cursor"
    headers: dict[str, str] = Field(default_factory=dict)
    max_pages: int = Field(default=1000, ge=1, le=1_000_000)
    timeout_s: float = Field(default=30.0, gt=0)
    watermark: str | None = Field(default=None, min_length=1)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", redact_url(self.url)
        yield "pagination", self.pagination


TableSource = Annotated[SqlSource | HttpSource, Field(discriminator="kind")]
"""A source that is not files: a database or an HTTP API."""


def _source_tag(value: Any) -> str:
    if isinstance(value, str):
        return "files"
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", "sql"))
    if isinstance(value, dict):
        return str(source_kind(value).get("kind"))
    return "files"


DataSource = Annotated[
    Annotated[str, Tag("files")]
    | Annotated[SqlSource, Tag("sql")]
    | Annotated[HttpSource, Tag("http")],
    Discriminator(_source_tag),
]
"""``data.source``: files (a path or a glob), a database, or an HTTP API."""


def source_kind(value: Any) -> Any:
    """Fill in ``kind`` of a source mapping that leaves it out: ``http`` for an ``http(s)://``
    URL without ``table``/``query``, else ``sql``."""
    if not isinstance(value, dict) or "kind" in value:
        return value
    url = str(value.get("url", ""))
    is_http = url.lower().startswith(("http://", "https://"))
    return {**value, "kind": "http" if is_http and not {"table", "query"} & value.keys() else "sql"}


class DataSla(_Section):
    """The service levels of a source, checked by ``opsloop up`` as monitors.

    Attributes:
        freshness: New rows must have arrived within this time (``24h``).
        volume: Rows that arrived in the last ``volume_period`` must be within this fraction
            of the median of the ``volume_days`` periods before (``0.3``: ±30 %).
        volume_period: The period counted.
        volume_days: How many periods the median covers.
        check_every: How often the loop loads the source to check them.
        severity: The severity of the alerts they raise.
    """

    freshness: Duration | None = None
    volume: float | None = Field(default=None, gt=0, le=10)
    volume_period: Duration = Field(default=timedelta(days=1))
    volume_days: int = Field(default=7, ge=1, le=366)
    check_every: Duration = Field(default=timedelta(hours=1))
    severity: Literal["info", "warning", "critical"] = "warning"


def _schedule_name(name: str) -> str:
    return check_name("schedule", name)


def _check_cron(expr: str) -> str:
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(f"{expr!r} is not a cron expression of five fields ('0 3 * * *')")
    return expr


class ScheduleSpec(_Section):
    """When a pipeline runs by itself, under ``opsloop up``.

    Exactly one trigger: ``cron`` (five fields, UTC), ``new_data`` (the source's digest or
    watermark changed; checked every ``check_every``) or ``incident`` (an incident of this
    kind opens: ``data_drift``, ``quality_drop`` …).

    Attributes:
        run: ``lifecycle`` or the name of a pipeline of ``pipelines:``.
        concurrency: When the previous run of the schedule still runs: ``forbid`` (skip this
            one), ``replace`` (stop it, start this one) or ``allow`` (run both).
        missed: Cron times that passed while the loop was down (more than
            ``starting_deadline`` ago): ``skip`` (record them as missed) or ``catch-up`` (run
            once for them), as a Kubernetes CronJob does.
        check_every: How often a ``new_data`` schedule looks at the source.
        starting_deadline: How late a cron time may be noticed and still start on time.
        params: Parameters of the run (``-p key=value`` of ``opsloop run``).
        suspend: Keep the schedule but start nothing.
    """

    cron: Annotated[str, AfterValidator(_check_cron)] | None = None
    new_data: bool = False
    incident: str | None = Field(default=None, min_length=1, max_length=32)
    run: str = "lifecycle"
    concurrency: Literal["forbid", "replace", "allow"] = "forbid"
    missed: Literal["skip", "catch-up"] = "skip"
    check_every: Duration = Field(default=timedelta(minutes=1))
    starting_deadline: Duration = Field(default=timedelta(minutes=5))
    params: dict[str, Any] = Field(default_factory=dict)
    suspend: bool = False

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSpec:
        given = [
            n
            for n, on in (
                ("cron", self.cron),
                ("new_data", self.new_data),
                ("incident", self.incident),
            )
            if on
        ]
        if len(given) != 1:
            raise ValueError(
                "a schedule needs exactly one trigger of 'cron', 'new_data' and 'incident'"
                + (f" (it has {', '.join(given)})" if given else "")
            )
        return self

    @property
    def trigger(self) -> str:
        """``cron``, ``new_data`` or ``incident``."""
        if self.cron is not None:
            return "cron"
        return "new_data" if self.new_data else "incident"


ScheduleName = Annotated[str, AfterValidator(_schedule_name)]
