"""Read a data source (CSV or Parquet files, or a glob of them) and version what was read.

CSV is parsed with Arrow's reader, which infers ISO 8601 timestamps, so a CSV and a Parquet
copy of the same frame come back with the same column types. Around the parser sit the checks
that make a bad file fail with one clear :class:`~opsloop.errors.DataError` naming the file and,
where it can be known, the line or byte: empty files, NUL bytes, text that is not UTF-8,
unterminated quotes and rows with too few or too many fields.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import hashlib
import io
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from opsloop.data.digest import DIGEST_SCHEME, content_digest
from opsloop.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DatasetVersion",
    "FileDigest",
    "dataset_version",
    "ensure_time_column",
    "read_source",
    "resolve_source",
]

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
"""File name endings :func:`read_source` understands."""

_GLOB_CHARS = frozenset("*?[")
_UTF8_CHUNK = 16 * 1024 * 1024
_MAX_BLOCK = 2**31 - 1
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)", re.DOTALL)
_INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")


class FileDigest(BaseModel):
    """One file a dataset version was read from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(
        description="Path as given, relative to the project directory when inside it."
    )
    sha256: str = Field(description="Hex SHA-256 of the file's bytes.")
    size: int = Field(ge=0, description="Size in bytes.")


class DatasetVersion(BaseModel):
    """A content-addressed version of a dataset.

    ``digest`` depends on the values only (see :mod:`opsloop.data.digest`), so re-reading the
    same data, or the same data saved in another format, gives the same digest; the files'
    own hashes say which bytes it was read from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str = Field(description="Hex SHA-256 content digest of the frame.")
    scheme: str = Field(default=DIGEST_SCHEME, description="Canonical serialisation used.")
    columns: dict[str, str] = Field(description="Schema: column name to pandas dtype.")
    rows: int = Field(ge=0)
    source: str = Field(description="The source as configured (a path or a glob).")
    files: list[FileDigest] = Field(default_factory=list)
    created_at: datetime

    @property
    def short(self) -> str:
        """First 12 hex characters of the digest, for display."""
        return self.digest[:12]


def resolve_source(source: str, *, base_dir: Path) -> list[Path]:
    """Return the files ``source`` names, in sorted order.

    Args:
        source: A file path or a glob (``*``, ``?``, ``[...]``, ``**``), relative to
            ``base_dir`` unless absolute.
        base_dir: The project directory.

    Raises:
        DataError: Nothing matches, the path is missing or a directory, or a file has an
            unsupported ending.
    """
    pattern = Path(source) if Path(source).is_absolute() else base_dir / source
    if _GLOB_CHARS.intersection(source):
        files = sorted(
            (Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file()),
            key=str,
        )
        if not files:
            raise DataError(f"no files match '{source}' (relative to {base_dir})")
    elif not pattern.exists():
        raise DataError(f"{source}: file does not exist (relative to {base_dir})")
    elif pattern.is_dir():
        raise DataError(
            f"{source}: is a directory; name a file or a glob such as '{source}/*.parquet'"
        )
    else:
        files = [pattern]
    for path in files:
        if _suffix(path) is None:
            raise DataError(
                f"{_display(path, base_dir)}: unsupported file type; expected one of "
                + ", ".join(SUPPORTED_SUFFIXES)
            )
    return files


def read_source(source: str, *, base_dir: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, or a glob of them, into one frame.

    Files of a glob are read in sorted order and concatenated; their schemas must agree
    (an all-empty column fits any type, and integers widen to floats, because CSV types are
    inferred per file). The result has a fresh ``RangeIndex``; a named index stored in a
    Parquet file comes back as a column.

    Args:
        source: A file path or glob, relative to ``base_dir`` unless absolute.
        base_dir: The project directory.

    Returns:
        The data.

    Raises:
        DataError: The source is missing, empty, unreadable, not UTF-8, ragged, or its files
            disagree on the schema. The message names the file and, where known, the line.
    """
    files = resolve_source(source, base_dir=base_dir)
    tables: list[tuple[str, pa.Table]] = []
    for path in files:
        shown = _display(path, base_dir)
        if _suffix(path) in {".csv", ".csv.gz"}:
            table = _read_csv(path, shown)
        else:
            table = _read_parquet(path, shown)
        tables.append((shown, _drop_positional_index(table)))
    table = tables[0][1] if len(tables) == 1 else _concat(tables)
    frame = table.to_pandas(date_as_object=False)
    return _reset_index(frame)


def dataset_version(
    df: pd.DataFrame,
    *,
    source: str,
    files: Sequence[Path | str],
    base_dir: Path | None = None,
) -> DatasetVersion:
    """Describe ``df`` as a content-addressed dataset version.

    Args:
        df: The data as read.
        source: The configured source (path or glob).
        files: The files it was read from (as returned by :func:`resolve_source`).
        base_dir: When given, file paths inside it are recorded relative to it.

    Returns:
        The version; JSON-serialisable with ``model_dump(mode="json")``.

    Raises:
        DataError: A file cannot be read for hashing.
    """
    digests = []
    for file in files:
        path = Path(file)
        full = base_dir / path if base_dir is not None and not path.is_absolute() else path
        try:
            with full.open("rb") as handle:
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
            size = full.stat().st_size
        except OSError as exc:
            raise DataError(f"{file}: cannot hash file: {exc.strerror or exc}") from exc
        shown = _display(full, base_dir) if base_dir is not None else str(file)
        digests.append(FileDigest(path=shown, sha256=sha, size=size))
    return DatasetVersion(
        digest=content_digest(df),
        columns={str(name): str(dtype) for name, dtype in df.dtypes.items()},
        rows=len(df),
        source=source,
        files=digests,
        created_at=datetime.now(UTC),
    )


def ensure_time_column(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Return ``df`` with ``column`` as a datetime column.

    Args:
        df: The data.
        column: The configured time column.

    Raises:
        DataError: The column is missing, or a value is not an ISO 8601 date or time (the
            message names the row and the value).
    """
    if column not in df.columns:
        known = ", ".join(map(str, df.columns))
        raise DataError(f"time column '{column}' is not in the data; columns are: {known}")
    series = df[column]
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return df
    converted = _to_datetime(series)
    bad = converted.isna() & series.notna()
    if bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        raise DataError(
            f"time column '{column}': row {row}: {series.iloc[row]!r}"
            " is not an ISO 8601 date or time"
        )
    out = df.copy()
    out[column] = converted
    return out


def _to_datetime(series: pd.Series) -> pd.Series:
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    try:
        return pd.to_datetime(series, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):
        # Mixed UTC offsets cannot share one naive column; bring them to UTC.
        return pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def _display(path: Path, base_dir: Path | None) -> str:
    if base_dir is not None:
        try:
            return path.resolve().relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


# --- CSV ---------------------------------------------------------------------------------------


def _read_csv(path: Path, shown: str) -> pa.Table:
    data = _read_bytes(path, shown)
    if not data or data.isspace():
        raise DataError(f"{shown}: file is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        hint = " (it looks like a Parquet file)" if data.startswith(b"PAR1") else ""
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{shown}: not a valid CSV text file: NUL byte at byte offset {nul} (line {line}){hint}"
        )
    _check_utf8(data, shown)
    if data.count(b'"') % 2:
        # An odd number of quotes is the cheap sign of an unterminated quoted field, which
        # Arrow would silently extend to the end of the file.
        _find_csv_syntax_error(data, shown)
    table = _parse_csv(data, shown, block_size=None)
    names = table.column_names
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(
                f"{shown}: line 1: column '{name}' appears more than once in the header"
            )
        seen.add(name)
    return table


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{shown}: cannot read file: {exc.strerror or exc}") from exc
    if _suffix(path) != ".csv.gz":
        return raw
    if not raw:
        raise DataError(f"{shown}: file is empty")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{shown}: not a valid gzip file: {exc}") from exc


def _check_utf8(data: bytes, shown: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _UTF8_CHUNK):
        chunk = view[start : start + _UTF8_CHUNK]
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk, final=start + _UTF8_CHUNK >= len(data))
        except UnicodeDecodeError as exc:
            offset = start - pending + exc.start
            line = data.count(b"\n", 0, offset) + 1
            raise DataError(
                f"{shown}: not valid UTF-8 at byte offset {offset} (line {line}): "
                f"byte 0x{data[offset]:02x}",
                hint="re-save the file as UTF-8",
            ) from exc


def _find_csv_syntax_error(data: bytes, shown: str) -> None:
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True)
    started = 1
    try:
        for _ in reader:
            started = reader.line_num + 1
    except csv.Error as exc:
        detail = str(exc)
        if "unexpected end of data" in detail:
            detail = "a quoted field starts on this line and is never closed"
        raise DataError(f"{shown}: line {started}: not valid CSV: {detail}") from exc


def _parse_csv(data: bytes, shown: str, *, block_size: int | None) -> pa.Table:
    read_options = pacsv.ReadOptions(block_size=block_size) if block_size else None
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc)
        ragged = _RAGGED.search(message)
        if ragged:
            raise _ragged_error(data, shown, int(ragged[1]), int(ragged[2]), ragged[3]) from exc
        if "conversion error" in message and block_size is None and len(data) < _MAX_BLOCK:
            # Types were inferred from the first block and a later block disagrees; infer
            # again from the whole file at once.
            return _parse_csv(data, shown, block_size=len(data) + 1)
        if "Empty CSV file" in message:
            raise DataError(f"{shown}: file is empty") from exc
        raise DataError(f"{shown}: not valid CSV: {message}") from exc


def _ragged_error(data: bytes, shown: str, expected: int, got: int, text: str) -> DataError:
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    width: int | None = None
    for row in reader:
        if not row:
            continue
        if width is None:
            width = len(row)
        elif len(row) != width:
            return DataError(
                f"{shown}: line {reader.line_num}: expected {width} fields, found {len(row)}"
                " (ragged rows)"
            )
    return DataError(
        f"{shown}: expected {expected} fields, found {got} in row {text.strip()!r} (ragged rows)"
    )


# --- Parquet -----------------------------------------------------------------------------------


def _read_parquet(path: Path, shown: str) -> pa.Table:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
    except OSError as exc:
        raise DataError(f"{shown}: cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise DataError(f"{shown}: file is empty")
    if size < 12 or head != b"PAR1" or tail != b"PAR1":
        raise DataError(f"{shown}: not a valid Parquet file (no PAR1 magic bytes)")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{shown}: not a valid Parquet file: {exc}") from exc


# --- combining ---------------------------------------------------------------------------------


def _drop_positional_index(table: pa.Table) -> pa.Table:
    """Drop an unnamed index that pandas stored as a column; it is a position, not data."""
    dropped = [name for name in table.column_names if _INDEX_COLUMN.match(name)]
    if not dropped:
        return table
    return table.drop_columns(dropped).replace_schema_metadata(None)


def _logical(type_: pa.DataType) -> str | None:
    """The type as far as agreement between files goes; ``None`` fits anything."""
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    if pa.types.is_null(type_):
        return None
    if pa.types.is_integer(type_) or pa.types.is_floating(type_):
        return "number"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return "binary"
    if pa.types.is_timestamp(type_):
        return f"timestamp[{type_.tz}]" if type_.tz else "timestamp"
    if pa.types.is_date(type_):
        return "timestamp"
    return str(type_)


def _concat(tables: list[tuple[str, pa.Table]]) -> pa.Table:
    first_name, first = tables[0]
    reference = {field.name: field.type for field in first.schema}
    prepared: list[pa.Table] = [_plain(first)]
    for name, table in tables[1:]:
        fields = {field.name: field.type for field in table.schema}
        for column in reference:
            if column not in fields:
                raise DataError(
                    f"schema mismatch: column '{column}' is in {first_name} but not in {name}"
                )
        for column, type_ in fields.items():
            if column not in reference:
                raise DataError(
                    f"schema mismatch: column '{column}' is in {name} but not in {first_name}"
                )
            want, got = _logical(reference[column]), _logical(type_)
            if want is not None and got is not None and want != got:
                raise DataError(
                    f"schema mismatch: column '{column}' is {reference[column]} in {first_name}"
                    f" but {type_} in {name}"
                )
            if want is None:
                reference[column] = type_
        prepared.append(_plain(table.select(list(reference))))
    try:
        return pa.concat_tables(prepared, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(f"schema mismatch between {first_name} and later files: {exc}") from exc


def _plain(table: pa.Table) -> pa.Table:
    """Decode dictionaries and dates so per-file encodings do not block concatenation."""
    columns = []
    for column in table.columns:
        type_ = column.type
        if pa.types.is_dictionary(type_):
            columns.append(column.cast(type_.value_type))
        elif pa.types.is_date(type_):
            columns.append(column.cast(pa.timestamp("ms")))
        else:
            columns.append(column)
    return pa.table(columns, names=table.column_names)


def _reset_index(frame: pd.DataFrame) -> pd.DataFrame:
    names = [name for name in frame.index.names if name is not None]
    if names:
        frame = frame.reset_index(level=names)
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    return frame
