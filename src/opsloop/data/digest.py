"""Content digest of a data frame, independent of the file format it came from.

The digest is a SHA-256 over a canonical serialisation of the frame's *values*: column names
and their order, row order and every cell count, while the storage details that differ between
a CSV and a Parquet copy of the same data do not (integer width, nullable vs numpy integers,
``1`` vs ``1.0``, datetime resolution, categorical vs plain strings, NaN vs None, the index).

Each column is reduced to a logical kind and two byte strings: a validity mask and the values
in a fixed little-endian layout (strings as Arrow large-string offsets plus UTF-8 bytes), all
fed to one SHA-256 with length prefixes so that no two frames share a byte stream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DIGEST_SCHEME", "content_digest"]

DIGEST_SCHEME = "opsloop-frame-v1"
"""Name of the canonical serialisation; part of the hashed bytes, bumped if it ever changes."""

_INT64_LIMIT = 2.0**63


def content_digest(df: pd.DataFrame) -> str:
    """Return the hex SHA-256 content digest of ``df``.

    Equal values in equal order give equal digests across runs, machines and file formats;
    any change to a value, a column name, the column order or the row order changes it.
    The index is not part of the content.

    Args:
        df: The frame to digest.

    Returns:
        64 lowercase hex characters.
    """
    hasher = hashlib.sha256()
    columns: list[tuple[str, str, np.ndarray, list[memoryview | bytes]]] = []
    for position in range(df.shape[1]):
        name = str(df.columns[position])
        kind, valid, payload = _canonical(df.iloc[:, position])
        columns.append((name, kind, valid, payload))
    header = {
        "scheme": DIGEST_SCHEME,
        "rows": len(df),
        "columns": [[name, kind] for name, kind, _, _ in columns],
    }
    _feed(hasher, json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode())
    for _, _, valid, payload in columns:
        _feed(hasher, np.packbits(valid, bitorder="little").tobytes())
        for part in payload:
            _feed(hasher, part)
    return hasher.hexdigest()


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


def _feed(hasher: _Hasher, part: memoryview | bytes) -> None:
    # A length prefix keeps the concatenation unambiguous.
    hasher.update(len(part).to_bytes(8, "little"))
    hasher.update(part)


def _canonical(series: pd.Series) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    """Reduce a column to ``(kind, validity mask, value bytes)``."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # Decode through the codes: much faster than astype on long columns.
        values = pd.api.extensions.take(
            dtype.categories.array, series.cat.codes.to_numpy(), allow_fill=True
        )
        series = pd.Series(values, index=series.index, name=series.name)
        dtype = series.dtype
    valid = series.notna().to_numpy(dtype=bool)
    if not valid.any():
        # An empty column has no type to speak of: CSV gives it none, Parquet may.
        return "null", valid, []
    if pd.api.types.is_bool_dtype(dtype):
        return _bools(series, valid)
    if pd.api.types.is_integer_dtype(dtype):
        return _integers(series, valid)
    if pd.api.types.is_float_dtype(dtype):
        return _floats(series, valid)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return _datetimes(series, valid)
    if pd.api.types.is_timedelta64_dtype(dtype):
        values = series.astype("timedelta64[ns]").to_numpy(dtype="int64", na_value=0)
        return "timedelta", valid, [_le(np.where(valid, values, 0), "<i8")]
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return _text(series, valid)
    return _objects(series, valid)


def _le(values: np.ndarray, dtype: str) -> memoryview:
    return np.ascontiguousarray(values, dtype=dtype).data.cast("B")


def _bools(
    series: pd.Series, valid: np.ndarray
) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    values = series.to_numpy(dtype=bool, na_value=False)
    return "bool", valid, [_le(values, "u1")]


def _integers(
    series: pd.Series, valid: np.ndarray
) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    if pd.api.types.is_unsigned_integer_dtype(series.dtype) and series.max() >= _INT64_LIMIT:
        return _text(series.map(str, na_action="ignore"), valid)
    values = series.to_numpy(dtype="int64", na_value=0)
    return "int", valid, [_le(values, "<i8")]


def _floats(
    series: pd.Series, valid: np.ndarray
) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    present = values[valid]
    finite = np.isfinite(present).all()
    if finite and np.all(present == np.floor(present)) and np.all(np.abs(present) < _INT64_LIMIT):
        # Integers with gaps come back as floats from CSV and as nullable ints from Parquet;
        # hashing integral floats as integers makes both the same content.
        return "int", valid, [_le(np.where(valid, values, 0.0).astype("int64"), "<i8")]
    return "float", valid, [_le(np.where(valid, values, 0.0), "<f8")]


def _datetimes(
    series: pd.Series, valid: np.ndarray
) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    kind = "datetime"
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        kind = "datetime_utc"
    try:
        values = series.dt.as_unit("ns").to_numpy(dtype="int64", na_value=0)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        # Dates beyond the nanosecond range (year 2262+) are kept at microseconds.
        values = series.dt.as_unit("us").to_numpy(dtype="int64", na_value=0)
        kind += "_us"
    return kind, valid, [_le(np.where(valid, values, 0), "<i8")]


def _objects(
    series: pd.Series, valid: np.ndarray
) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "string":
        return _text(series, valid)
    if inferred == "boolean":
        return _bools(series, valid)
    if inferred == "integer":
        try:
            return _integers(series.astype("Int64"), valid)
        except (OverflowError, TypeError, ValueError):
            return _text(series.map(str, na_action="ignore"), valid)
    if inferred in {"floating", "mixed-integer-float"}:
        return _floats(series.astype("float64"), valid)
    if inferred in {"datetime64", "datetime", "date"}:
        try:
            return _datetimes(pd.to_datetime(series), valid)
        except (TypeError, ValueError):
            pass
    if inferred == "bytes":
        array = pa.array(series, type=pa.large_binary(), from_pandas=True)
        return "bytes", valid, _offsets_and_data(array)
    # Mixed or exotic objects: hash their text, which is also what a CSV copy would hold.
    return _text(series.map(str, na_action="ignore"), valid)


def _text(series: pd.Series, valid: np.ndarray) -> tuple[str, np.ndarray, list[memoryview | bytes]]:
    array = pa.array(series, type=pa.large_string(), from_pandas=True)
    return "str", valid, _offsets_and_data(array)


def _offsets_and_data(array: pa.Array | pa.ChunkedArray) -> list[memoryview | bytes]:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        # Arrow allows a null slot to span bytes; blank them so only the mask speaks.
        array = pc.if_else(array.is_null(), pa.scalar("", array.type), array)
    buffers = array.buffers()
    offsets = np.frombuffer(
        buffers[1], dtype="<i8", count=len(array) + 1, offset=array.offset * 8
    ).astype("<i8")
    start, end = int(offsets[0]), int(offsets[-1])
    data = buffers[2]
    chunk = memoryview(data)[start:end] if data is not None else b""
    return [_le(offsets - start, "<i8"), chunk]
