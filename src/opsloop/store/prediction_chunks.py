"""Large requests of the prediction log, kept as Parquet chunks in the artifact store.

A request with more rows than the declared ``max_inline_rows`` is not stored inline in the
``predictions`` table: its inputs and outputs become one Parquet file in the content-addressed
artifact store, and the table's row keeps a reference (the chunk's digest in ``chunk``, the
request's row count in ``rows``, its columns under ``outputs.log``). The model server's store
sink writes chunks and the monitors read them; both use this module, so the format has one
definition.

Layout: one column per input column, under its own name, and the outputs in one more column
(``__output__``, or a name no input uses; the file's metadata names it). A column whose values
Arrow cannot hold as one type is stored as JSON text, marked in the field's metadata. The
request id, model and version are in the file's metadata, so that the chunks of two requests
are different blobs (and deleting one never takes another's).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from opsloop.errors import ArtifactError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd
    import pyarrow as pa

    from opsloop.artifacts import ArtifactStore

__all__ = [
    "CHUNK_FORMAT",
    "ChunkData",
    "ChunkRef",
    "encode_chunk",
    "is_chunk",
    "read_chunk",
    "write_chunk",
]

CHUNK_FORMAT = "opsloop.prediction-chunk/v1"
_FORMAT_KEY = b"opsloop.format"
_OUTPUT_KEY = b"opsloop.output_column"
_REQUEST_KEY = b"opsloop.request_id"
_MODEL_KEY = b"opsloop.model"
_VERSION_KEY = b"opsloop.version"
_ENCODING_KEY = b"opsloop.encoding"
_JSON = b"json"


@dataclass(frozen=True)
class ChunkRef:
    """Where a request's rows went: the chunk's digest, rows, input columns and size."""

    digest: str
    rows: int
    columns: list[str]
    size: int


@dataclass(frozen=True)
class ChunkData:
    """Rows read back from a chunk.

    Attributes:
        inputs: The input columns, one row per row read (JSON-encoded columns decoded to
            Python values in object columns).
        outputs: One output entry per row, as the model answered it.
    """

    inputs: pd.DataFrame
    outputs: list[Any]


def _array(values: Sequence[Any]) -> tuple[pa.Array, bool]:
    """``values`` as one Arrow array; as JSON text when they have no common Arrow type."""
    # Lazy imports here and below (noqa: PLC0415) of pyarrow, pandas: each loads only where it is
    # used, so importing this module stays light.
    import pyarrow as pa  # noqa: PLC0415

    try:
        return pa.array(values), False
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.array([_dumps(v) for v in values], type=pa.string()), True


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        # What orjson refuses (integers beyond 64 bits, numpy object arrays): the standard
        # library writes it, or its text.
        return json.dumps(value, default=str)


def encode_chunk(
    *,
    request_id: str,
    model: str,
    version: str,
    inputs: Mapping[str, Sequence[Any]],
    outputs: Sequence[Any],
) -> bytes:
    """A request's inputs and outputs as Parquet bytes (see the module description).

    Raises:
        ValueError: An input column does not have one value per output, or a value cannot
            be written even as JSON.
    """

    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    n = len(outputs)
    names = [str(name) for name in inputs]
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for name, key in zip(names, inputs, strict=True):
        values = inputs[key]
        if len(values) != n:
            raise ValueError(
                f"request {request_id}: input column '{name}' has {len(values)} values for "
                f"{n} outputs"
            )
        array, as_json = _array(values)
        fields.append(
            pa.field(name, array.type, metadata={_ENCODING_KEY: _JSON} if as_json else None)
        )
        arrays.append(array)
    output = "__output__"
    while output in names:
        output = f"_{output}_"
    array, as_json = _array(outputs)
    fields.append(
        pa.field(output, array.type, metadata={_ENCODING_KEY: _JSON} if as_json else None)
    )
    arrays.append(array)
    schema = pa.schema(
        fields,
        metadata={
            _FORMAT_KEY: CHUNK_FORMAT.encode(),
            _OUTPUT_KEY: output.encode(),
            _REQUEST_KEY: request_id.encode(),
            _MODEL_KEY: model.encode(),
            _VERSION_KEY: version.encode(),
        },
    )
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="zstd")
    return sink.getvalue()


def write_chunk(
    artifacts: ArtifactStore,
    *,
    request_id: str,
    model: str,
    version: str,
    inputs: Mapping[str, Sequence[Any]],
    outputs: Sequence[Any],
) -> ChunkRef:
    """Write a request's rows to the artifact store as one chunk; its reference.

    Writing the same request again stores nothing new (the bytes, so the digest, are the
    same), which makes a retried write harmless.

    Raises:
        ValueError: As :func:`encode_chunk`.
    """
    data = encode_chunk(
        request_id=request_id, model=model, version=version, inputs=inputs, outputs=outputs
    )
    digest = artifacts.put_bytes(data)
    return ChunkRef(
        digest=digest, rows=len(outputs), columns=[str(c) for c in inputs], size=len(data)
    )


def is_chunk(artifacts: ArtifactStore, digest: str) -> bool:
    """Whether the blob ``digest`` is a prediction chunk (its Parquet footer says so).

    Retention asks before deleting a blob a request referenced, so that a row pointing at
    another artifact (a model, a profile) cannot make it delete that artifact.

    Raises:
        NotFoundError: No blob has this digest.
        ArtifactError: ``digest`` is not a digest.
    """
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    local = getattr(artifacts, "local_path", None)
    path = local(digest) if callable(local) else None
    try:
        if path is not None and path.is_file():
            # Only the footer is read from a local file.
            meta = pq.read_schema(path).metadata
        else:
            meta = pq.read_schema(pa.BufferReader(artifacts.get_bytes(digest))).metadata
    except (pa.ArrowException, OSError):
        return False
    return bool(meta) and meta.get(_FORMAT_KEY) == CHUNK_FORMAT.encode()


def read_chunk(
    artifacts: ArtifactStore, digest: str, *, rows: Sequence[int] | None = None
) -> ChunkData:
    """Read a chunk back, all of it or only the rows at positions ``rows`` (in that order).

    Raises:
        NotFoundError: The chunk is not in the artifact store (retention deleted it).
        DigestMismatchError: Its bytes do not match its digest.
        ArtifactError: The blob is not a prediction chunk.
    """
    import pandas as pd  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    data = artifacts.get_bytes(digest)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"artifact {digest} is not a prediction chunk: {exc}") from exc
    meta = table.schema.metadata or {}
    output = meta.get(_OUTPUT_KEY, b"").decode()
    if meta.get(_FORMAT_KEY) != CHUNK_FORMAT.encode() or output not in table.column_names:
        raise ArtifactError(f"artifact {digest} is not a prediction chunk ({CHUNK_FORMAT})")
    if rows is not None:
        try:
            table = table.take(pa.array(rows, type=pa.int64()))
        except (pa.ArrowException, IndexError, OverflowError) as exc:
            raise ArtifactError(
                f"chunk {digest} has {table.num_rows} rows; rows beyond were asked for: {exc}"
            ) from exc
    inputs: dict[str, Any] = {}
    outputs: list[Any] = []
    for field, column in zip(table.schema, table.columns, strict=True):
        as_json = (field.metadata or {}).get(_ENCODING_KEY) == _JSON
        if field.name == output:
            values = column.to_pylist()
            outputs = [_loads(v) for v in values] if as_json else values
        elif as_json:
            inputs[field.name] = pd.Series([_loads(v) for v in column.to_pylist()], dtype=object)
        else:
            inputs[field.name] = column.to_pandas()
    return ChunkData(
        inputs=pd.DataFrame(inputs, index=pd.RangeIndex(table.num_rows)), outputs=outputs
    )


def _loads(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)
