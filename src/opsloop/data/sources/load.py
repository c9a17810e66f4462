"""Load a data source that is not files into a content-addressed Parquet snapshot.

A load reads the source (a database table or query, an HTTP API); with a watermark it reads
only the rows past the largest value the previous load reached and the version is the union
of the previous snapshot and the new rows. The snapshot is stored as Parquet in the artifact
store (addressed by its bytes), the version is recorded as a data set version (addressed by
its content, :func:`opsloop.data.digest.content_digest`) and the load in ``store.sources``,
which the data SLAs and the ``new_data`` schedules read.

Secrets: the URL and header values may be references (``env:NAME``, ``file:PATH``), resolved
here and remembered by :mod:`opsloop.redact`; the source as shown anywhere is the reference,
or the URL with its password masked.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.data.digest import content_digest
from opsloop.data.ingest import read_source, resolve_source
from opsloop.data.sources.http import read_http_source
from opsloop.data.sources.sql import max_watermark, read_sql_source
from opsloop.errors import DataError
from opsloop.redact import redact_url
from opsloop.secretrefs import is_reference, resolve_secret
from opsloop.spec.sources import HttpSource, SqlSource

if TYPE_CHECKING:
    import httpx

    from opsloop.context import Project
    from opsloop.spec.schema import DataSection
    from opsloop.store import SourceLoadInfo

__all__ = [
    "SourceLoad",
    "decode_watermark",
    "encode_watermark",
    "load_source",
    "probe_source",
    "read_data",
    "source_display",
]


@dataclass(frozen=True)
class SourceLoad:
    """What one load did.

    Attributes:
        name: The source's name.
        display: The source as shown (no secret).
        record: The load as recorded in the store.
        frame: The whole version.
        previous: The load before, or None.
    """

    name: str
    display: str
    record: SourceLoadInfo
    frame: pd.DataFrame
    previous: SourceLoadInfo | None

    @property
    def changed(self) -> bool:
        """The version differs from the previous load's."""
        return self.previous is None or self.previous.digest != self.record.digest


def source_display(source: SqlSource | HttpSource | str) -> str:
    """The source as it may be shown: a path, or the URL (reference, or password masked) and
    what is read from it."""
    if isinstance(source, str):
        return source
    url = source.url if is_reference(source.url) else redact_url(source.url)
    if isinstance(source, HttpSource):
        return url
    if source.table is not None:
        return f"{url} table={source.table}"
    assert source.query is not None
    return f"{url} query={hashlib.sha256(source.query.encode()).hexdigest()[:12]}"


def encode_watermark(value: Any) -> dict[str, Any] | None:
    """A watermark value as JSON (``{"type", "value"}``), None for no value."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(float(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool | np.bool_):
        raise DataError("data.source.watermark: a true/false column cannot be a watermark")
    if isinstance(value, int | np.integer):
        return {"type": "int", "value": int(value)}
    if isinstance(value, float | np.floating):
        return {"type": "float", "value": float(value)}
    return {"type": "str", "value": str(value)}


def decode_watermark(value: dict[str, Any] | None) -> Any:
    """The watermark value :func:`encode_watermark` wrote."""
    if value is None:
        return None
    kind, raw = value.get("type"), value.get("value")
    if kind == "datetime":
        return datetime.fromisoformat(str(raw))
    if kind == "date":
        return date.fromisoformat(str(raw))
    if kind == "int":
        return int(raw)  # type: ignore[arg-type]
    if kind == "float":
        return float(raw)  # type: ignore[arg-type]
    return str(raw)


def _fetch(
    project: Project,
    source: SqlSource | HttpSource,
    after: Any,
    transport: httpx.BaseTransport | None,
) -> pd.DataFrame:
    url = resolve_secret(source.url, setting="data.source.url", base_dir=project.dir, url=True)
    if isinstance(source, SqlSource):
        return read_sql_source(
            url, table=source.table, query=source.query, watermark=source.watermark, after=after
        )
    headers = {
        key: resolve_secret(value, setting=f"data.source.headers.{key}", base_dir=project.dir)
        for key, value in source.headers.items()
    }
    frame = read_http_source(source, url=url, headers=headers, transport=transport)
    if source.watermark is not None and after is not None and not frame.empty:
        _require_column(frame, source.watermark, "data.source.watermark")
        column = _comparable(frame[source.watermark], after)
        frame = frame[column > after].reset_index(drop=True)
    return frame


def _comparable(series: pd.Series, after: Any) -> pd.Series:
    if isinstance(after, datetime):
        return pd.to_datetime(series, utc=after.tzinfo is not None)
    return series


def _require_column(frame: pd.DataFrame, column: str, setting: str) -> None:
    if column not in frame.columns:
        raise DataError(
            f"{setting}: column '{column}' is not in the data; columns: "
            + ", ".join(map(str, frame.columns))
        )


def load_source(
    project: Project,
    data: DataSection,
    *,
    at: datetime | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SourceLoad:
    """Load the project's database or HTTP source: the new rows (or all, without a
    watermark), joined to the previous snapshot, stored and recorded.

    Args:
        project: The project (its store, artifacts and folder).
        data: The ``data`` section; its ``source`` is not files.
        at: When the load happened (default: now), for tests.
        transport: An httpx transport for an HTTP source (tests).

    Raises:
        DataError: The source cannot be read, the watermark column is missing, or the new
            rows do not fit the previous snapshot's columns.
        ConfigError: A secret reference cannot be resolved.
    """
    source = data.source
    if isinstance(source, str):
        raise DataError(f"{source}: a file source is read, not loaded")
    name = data.source_name
    store = project.store
    previous = store.sources.latest(name)
    incremental = source.watermark is not None and previous is not None
    after = decode_watermark(previous.watermark) if incremental and previous else None
    new = _fetch(project, source, after, transport)
    if source.watermark is not None and not new.empty:
        _require_column(new, source.watermark, "data.source.watermark")
    if incremental and previous is not None:
        old = pd.read_parquet(io.BytesIO(project.artifacts.get_bytes(previous.artifact)))
        frame = _union(old, new) if not new.empty else old
        new_rows = len(new)
    else:
        frame = new
        new_rows = len(new) if previous is None else max(len(new) - previous.rows, 0)
    watermark = previous.watermark if previous is not None else None
    if source.watermark is not None and not frame.empty:
        watermark = encode_watermark(frame[source.watermark].max())
    digest = content_digest(frame)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    artifact = project.artifacts.put_bytes(buffer.getvalue())
    display = source_display(source)
    store.datasets.record(
        digest,
        source=display,
        row_count=len(frame),
        schema={str(c): str(t) for c, t in frame.dtypes.items()},
        name=name,
        details={"artifact": artifact, "watermark": watermark, "kind": source.kind},
    )
    record = store.sources.record(
        name,
        digest=digest,
        artifact=artifact,
        rows=len(frame),
        new_rows=new_rows,
        watermark=watermark,
        details={"source": display, "incremental": incremental},
        at=at,
    )
    return SourceLoad(name=name, display=display, record=record, frame=frame, previous=previous)


def _union(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if list(old.columns) != list(new.columns):
        missing = [c for c in old.columns if c not in new.columns]
        extra = [c for c in new.columns if c not in old.columns]
        raise DataError(
            "data.source: the new rows' columns differ from the snapshot's"
            + (f"; missing: {', '.join(map(str, missing))}" if missing else "")
            + (f"; new: {', '.join(map(str, extra))}" if extra else ""),
            hint="a changed schema needs a full reload: give the source a new data.name",
        )
    return pd.concat([old, new.astype(old.dtypes.to_dict(), errors="ignore")], ignore_index=True)


def probe_source(project: Project, data: DataSection) -> str:
    """A token that changes when the source has new data: the files' digest, the largest
    watermark of a database source, else the content digest of a fresh load."""
    source = data.source
    if isinstance(source, str):
        h = hashlib.sha256()
        for path in resolve_source(source, base_dir=project.dir):
            h.update(str(path).encode())
            h.update(path.read_bytes())
        return "files:" + h.hexdigest()
    if isinstance(source, SqlSource) and source.watermark is not None:
        url = resolve_secret(source.url, setting="data.source.url", base_dir=project.dir, url=True)
        value = max_watermark(
            url, table=source.table, query=source.query, watermark=source.watermark
        )
        return "watermark:" + str((encode_watermark(value) or {}).get("value"))
    return "digest:" + load_source(project, data).record.digest


def read_data(project: Project, data: DataSection) -> pd.DataFrame:
    """The data of the ``data`` section: the files read, or the latest snapshot of a
    database or HTTP source (loaded now if it never was)."""
    if isinstance(data.source, str):
        return read_source(data.source, base_dir=project.dir)
    latest = project.store.sources.latest(data.source_name)
    if latest is None:
        return load_source(project, data).frame
    return pd.read_parquet(io.BytesIO(project.artifacts.get_bytes(latest.artifact)))
