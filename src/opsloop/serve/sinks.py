"""File sinks for prediction and feedback records: JSON Lines and Parquet.

Both take any record with a ``to_dict()`` (:class:`~opsloop.serve.base.PredictionRecord`,
:class:`~opsloop.serve.base.FeedbackRecord`), so one class serves both logs.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from opsloop.errors import ConfigError

__all__ = ["JsonlSink", "ParquetSink", "open_sink", "read_jsonl"]

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> Any:
    # pandas Timestamps, numpy datetimes, Decimals and the like: their text form is faithful.
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class JsonlSink:
    """Appends records to a JSON Lines file, one object per line, fsynced per batch.

    Args:
        path: The file; its directory is created.
        fsync: Force every batch to disk before the write counts as done.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock = threading.Lock()

    def encode(self, records: list[Any]) -> bytes:
        """``records`` as JSON Lines."""
        return b"".join(
            orjson.dumps(record.to_dict(), default=_default, option=_JSON_OPTS) + b"\n"
            for record in records
        )

    def write_batch(self, records: list[Any]) -> None:
        """Append ``records``."""
        self.write_bytes(self.encode(records))

    def write_bytes(self, data: bytes) -> None:
        """Append already encoded lines (see :meth:`encode`)."""
        with self._lock, self.path.open("ab") as fh:
            fh.write(data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


class ParquetSink:
    """Writes every batch as a new Parquet file in a directory.

    Nested fields (inputs, outputs, labels) are stored as JSON text so that models with
    different signatures share one schema.

    Args:
        directory: Where the ``part-*.parquet`` files go; it is created.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        self._lock = threading.Lock()

    def write_batch(self, records: list[Any]) -> None:
        """Write ``records`` to a new part file."""
        # Lazy imports here and below (noqa: PLC0415) of pyarrow: each loads only where it is used,
        # so importing this module stays light.
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415

        rows: list[dict[str, Any]] = []
        for record in records:
            row = record.to_dict()
            for key, value in row.items():
                if isinstance(value, dict | list) or key == "label":
                    row[key] = orjson.dumps(value, default=_default, option=_JSON_OPTS).decode()
            stamp = getattr(record, "timestamp", None)
            if isinstance(stamp, dt.datetime):
                row["timestamp"] = stamp
            rows.append(row)
        table = pa.Table.from_pylist(rows)
        with self._lock:
            self._seq += 1
            name = f"part-{time.time_ns()}-{self._seq:06d}.parquet"
        tmp = self.directory / f".{name}.tmp"
        pq.write_table(table, tmp)
        # Rename so a reader never sees half a file.
        tmp.rename(self.directory / name)

    def __repr__(self) -> str:
        return f"ParquetSink({str(self.directory)!r})"


def open_sink(uri: str) -> JsonlSink | ParquetSink:
    """Open a file sink from a URI or path.

    ``*.jsonl`` (or ``jsonl://PATH``) gives a :class:`JsonlSink`; ``parquet://DIR`` or a path
    ending in ``/`` gives a :class:`ParquetSink`.

    Raises:
        ConfigError: The URI names neither kind.
    """
    if uri.startswith("jsonl://"):
        return JsonlSink(uri.removeprefix("jsonl://"))
    if uri.startswith("parquet://"):
        return ParquetSink(uri.removeprefix("parquet://"))
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    if uri.endswith((".jsonl", ".ndjson")):
        return JsonlSink(uri)
    if uri.endswith(("/", os.sep)) or Path(uri).is_dir():
        return ParquetSink(uri)
    raise ConfigError(
        f"sink {uri!r}: use a '.jsonl' file, 'jsonl://PATH', 'parquet://DIR' or a directory "
        "ending in '/'"
    )


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read back every record of a JSON Lines sink."""
    with Path(path).open("rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
