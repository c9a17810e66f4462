"""Request decoding and response encoding for the V2 and MLflow-style protocols.

Every request is turned into the same internal form, a :class:`Columns` of plain Python lists
keyed by signature column, checked value by value against the signature. Frames are only built
once per micro-batch (see :mod:`opsloop.serve.batching`), which keeps the per-request cost low.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from opsloop.errors import InvalidRequestError
from opsloop.serve.base import ColumnSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "PREDICT_METHODS",
    "Columns",
    "Schema",
    "V2Request",
    "decode_invocations",
    "decode_v2",
    "encode_v2_response",
    "ignored_note",
    "loads_json",
    "media_type",
    "parse_v2",
    "predict_method",
    "schema_of",
    "v2_datatype_for",
    "v2_input_datatype",
    "v2_outputs",
]

_V2_KIND: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "int",
    "UINT16": "int",
    "UINT32": "int",
    "UINT64": "int",
    "INT8": "int",
    "INT16": "int",
    "INT32": "int",
    "INT64": "int",
    "FP16": "float",
    "FP32": "float",
    "FP64": "float",
    "BF16": "float",
    "BYTES": "bytes",
}

_V2_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}

# The values each integer dtype (and V2 integer datatype) holds, and the largest magnitude of
# the narrow float dtypes: a value beyond is a client error (400), not an overflow in numpy
# when the batch's frame is built (500, and a failed predict for its batch-mates).
_INT_RANGE: dict[str, tuple[int, int]] = {
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
_FLOAT_MAX: dict[str, float] = {"float16": 65504.0, "float32": float(np.finfo(np.float32).max)}
_V2_INT_RANGE: dict[str, tuple[int, int]] = {
    dt.upper(): bounds for dt, bounds in _INT_RANGE.items()
}
_V2_FLOAT_MAX: dict[str, float] = {"FP16": 65504.0, "FP32": _FLOAT_MAX["float32"]}

# Which tensor datatypes may feed a column of each kind. Ints widen into floats as in MLflow's
# schema enforcement; floats never narrow into ints.
_ACCEPTS: dict[str, frozenset[str]] = {
    "float": frozenset({"float", "int"}),
    "int": frozenset({"int"}),
    "bool": frozenset({"bool"}),
    "str": frozenset({"bytes"}),
    "datetime": frozenset({"bytes"}),
}

_INPUT_DATATYPE: dict[str, str] = {
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bool": "BOOL",
}


def v2_input_datatype(spec: ColumnSpec) -> str:
    """The V2 datatype a client should send for a signature column."""
    return _INPUT_DATATYPE.get(spec.dtype, "BYTES")


def v2_datatype_for(array: np.ndarray) -> str:
    """The V2 datatype of a numpy output array."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iuf":
        return {
            "i": "INT",
            "u": "UINT",
            "f": "FP",
        }[kind] + str(array.dtype.itemsize * 8)
    return "BYTES"


_NUMERIC = frozenset({"float", "int", "bool"})


class Schema(list[ColumnSpec]):
    """A signature with what the hot path needs precomputed.

    Attributes:
        names: Column names, in order.
        block_dtype: The dtype shared by every column when all are numeric of one dtype (such
            inputs travel as one flat row-major list and become one 2-D block), else None.
    """

    def __init__(self, signature: Sequence[ColumnSpec]) -> None:
        super().__init__(signature)
        self.names = [spec.name for spec in signature]
        self.kinds = [spec.kind for spec in signature]
        dtypes = {spec.dtype for spec in signature}
        self.block_dtype: str | None = (
            signature[0].dtype
            if signature and len(dtypes) == 1 and signature[0].kind in _NUMERIC
            else None
        )
        self.block_kind: str | None = signature[0].kind if self.block_dtype else None


def schema_of(signature: Sequence[ColumnSpec]) -> Schema:
    """``signature`` as a :class:`Schema` (itself when it is one already)."""
    return signature if isinstance(signature, Schema) else Schema(signature)


@dataclass(slots=True)
class Columns:
    """Decoded, validated request inputs.

    Attributes:
        data: One list of values per signature column, in signature order; None when the
            values are held row-major in ``flat``.
        rows: Number of rows.
        flat: Row-major values (``rows * width``), used for single-dtype numeric signatures.
        ignored: Columns the request sent beyond the signature (``/invocations`` only), as
            sent: not predicted with, kept for the prediction log.
    """

    data: list[list[Any]] | None
    rows: int
    flat: list[Any] | None = None
    ignored: dict[str, list[Any]] | None = None

    def column_data(self, width: int) -> list[list[Any]]:
        """One list per column."""
        if self.data is not None:
            return self.data
        assert self.flat is not None
        flat = self.flat
        return [flat[j::width] for j in range(width)]

    def as_dict(self, signature: Sequence[ColumnSpec]) -> dict[str, list[Any]]:
        """The inputs keyed by column name."""
        cols = self.column_data(len(signature))
        return {spec.name: values for spec, values in zip(signature, cols, strict=True)}


def loads_json(body: bytes) -> Any:
    """Parse a JSON body.

    Raises:
        InvalidRequestError: The body is empty or not JSON.
    """
    if not body:
        raise InvalidRequestError("the request body is empty; expected a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_NONE = type(None)
_FAST_TYPES: dict[str, frozenset[type]] = {
    "float": frozenset({float, int, _NONE}),
    "int": frozenset({int}),
    "bool": frozenset({bool}),
    "str": frozenset({str, _NONE}),
}


def _types_fit(kind: str, values: list[Any]) -> bool:
    """Whether every value has a type the kind takes as is (the common, fast case)."""
    allowed = _FAST_TYPES.get(kind)
    return allowed is not None and set(map(type, values)) <= allowed


def _check_range(spec: ColumnSpec, values: list[Any]) -> None:
    """Refuse a number its column's dtype cannot hold (``values`` have the right types)."""
    bounds = _INT_RANGE.get(spec.dtype)
    if bounds is not None:
        low, high = bounds
        if values and (min(values) < low or max(values) > high):
            bad = next(v for v in values if v < low or v > high)
            raise InvalidRequestError(
                f"column '{spec.name}' ({spec.dtype}): {bad!r} is out of range ({low} to {high})",
                field=spec.name,
            )
        return
    limit = _FLOAT_MAX.get(spec.dtype)
    if limit is not None:
        for value in values:
            if value is not None and abs(value) > limit:
                raise InvalidRequestError(
                    f"column '{spec.name}' ({spec.dtype}): {value!r} is out of range "
                    f"(magnitude up to {limit:g})",
                    field=spec.name,
                )


def _check_block_range(schema: Schema, flat: list[Any]) -> None:
    """:func:`_check_range` for row-major values of a single-dtype signature."""
    spec = schema[0]
    if spec.dtype not in _INT_RANGE and spec.dtype not in _FLOAT_MAX:
        return
    width = len(schema)
    try:
        _check_range(spec, flat)
    except InvalidRequestError:
        # Name the column at fault rather than the first one.
        for j, column in enumerate(schema):
            _check_range(column, flat[j::width])
        raise


def _check_values(spec: ColumnSpec, values: list[Any]) -> list[Any]:
    """Check every value of a column against its kind and range; returns the values to use.

    Hand-written rather than a pandas/pandera pass because it runs per request on a handful of
    values, where building a frame would cost more than the prediction itself.
    """
    kind = spec.kind
    if _types_fit(kind, values):
        if kind == "int" or spec.dtype in _FLOAT_MAX:
            _check_range(spec, values)
        return values
    name = spec.name
    if kind == "float":
        for value in values:
            tp = type(value)
            if tp is not float and tp is not int and value is not None:
                raise InvalidRequestError(
                    f"column '{name}' ({spec.dtype}): expected a number, got "
                    f"{_type_name(value)} {value!r}",
                    field=name,
                )
        _check_range(spec, values)
        return values
    if kind == "int":
        for value in values:
            tp = type(value)
            if tp is int:
                continue
            if tp is float and value.is_integer():
                continue
            raise InvalidRequestError(
                f"column '{name}' ({spec.dtype}): expected an integer, got "
                f"{_type_name(value)} {value!r}",
                field=name,
            )
        _check_range(spec, values)
        return values
    if kind == "bool":
        for value in values:
            if type(value) is not bool:
                raise InvalidRequestError(
                    f"column '{name}' (bool): expected true or false, got "
                    f"{_type_name(value)} {value!r}",
                    field=name,
                )
        return values
    if kind == "str":
        for value in values:
            if type(value) is not str and value is not None:
                raise InvalidRequestError(
                    f"column '{name}' ({spec.dtype}): expected a string, got "
                    f"{_type_name(value)} {value!r}",
                    field=name,
                )
        return values
    # datetime: ISO 8601 strings, parsed now so a bad one fails this request only.
    for value in values:
        if type(value) is not str:
            raise InvalidRequestError(
                f"column '{name}' (datetime64[ns]): expected an ISO 8601 string, got "
                f"{_type_name(value)} {value!r}",
                field=name,
            )
    try:
        parsed = pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"column '{name}' (datetime64[ns]): not an ISO 8601 date/time: {exc}", field=name
        ) from None
    return list(parsed)


def _check_names(
    signature: Sequence[ColumnSpec], names: Iterable[str], where: str, *, extra_ok: bool = False
) -> list[str]:
    """Refuse missing or repeated columns, and columns beyond the signature unless
    ``extra_ok``; returns those extra columns, in the order given."""
    expected = [spec.name for spec in signature]
    given = list(names)
    given_set = set(given)
    missing = [name for name in expected if name not in given_set]
    if missing:
        raise InvalidRequestError(
            f"{where}: missing column(s) {', '.join(repr(m) for m in missing)}; the model "
            f"expects {expected}",
            field=missing[0],
        )
    expected_set = set(expected)
    extra = [name for name in given if name not in expected_set]
    if extra and not extra_ok:
        raise InvalidRequestError(
            f"{where}: unknown column(s) {', '.join(repr(e) for e in extra)}; the model "
            f"expects {expected}",
            field=extra[0],
        )
    if len(given) != len(given_set):
        dup = next(name for name in given if given.count(name) > 1)
        raise InvalidRequestError(f"{where}: column '{dup}' is given twice", field=dup)
    return extra


def _from_rows(signature: Sequence[ColumnSpec], rows: Any, where: str) -> Columns:
    """Columns from a list of rows, each a list in signature order."""
    width = len(signature)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidRequestError(
                f"{where}[{i}]: expected a row (a list of {width} values), got {_type_name(row)}",
                field=f"{where}[{i}]",
            )
        if len(row) != width:
            raise InvalidRequestError(
                f"{where}[{i}]: row has {len(row)} values, the model expects {width} "
                f"({[spec.name for spec in signature]})",
                field=f"{where}[{i}]",
            )
    schema = schema_of(signature)
    if schema.block_kind is not None:
        flat = list(chain.from_iterable(rows))
        if _types_fit(schema.block_kind, flat):
            _check_block_range(schema, flat)
            return Columns(None, len(rows), flat)
    data = [_check_values(spec, [row[j] for row in rows]) for j, spec in enumerate(signature)]
    return Columns(data, len(rows))


def _from_records(signature: Sequence[ColumnSpec], records: list[Any], where: str) -> Columns:
    """Columns from a list of ``{column: value}`` records; keys beyond the signature are
    kept aside (a record without one of them has None there)."""
    names = [spec.name for spec in signature]
    width = len(names)
    extra: dict[str, None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidRequestError(
                f"{where}[{i}]: expected an object of column values, got {_type_name(record)}",
                field=f"{where}[{i}]",
            )
        if len(record) != width or not all(name in record for name in names):
            extra.update(
                dict.fromkeys(
                    _check_names(signature, record.keys(), f"{where}[{i}]", extra_ok=True)
                )
            )
    data = [_check_values(spec, [record[spec.name] for record in records]) for spec in signature]
    ignored = {name: [record.get(name) for record in records] for name in extra} or None
    return Columns(data, len(records), ignored=ignored)


def _from_columnar(
    signature: Sequence[ColumnSpec], columns: Mapping[str, Any], where: str
) -> Columns:
    """Columns from ``{column: [values]}``; columns beyond the signature are kept aside."""
    extra = _check_names(signature, columns.keys(), where, extra_ok=True)
    rows: int | None = None
    data: list[list[Any]] = []
    for spec in signature:
        values = columns[spec.name]
        if not isinstance(values, list):
            values = [values]
        if rows is None:
            rows = len(values)
        elif len(values) != rows:
            raise InvalidRequestError(
                f"{where}: column '{spec.name}' has {len(values)} values, others have {rows}",
                field=spec.name,
            )
        data.append(_check_values(spec, values))
    ignored: dict[str, list[Any]] = {}
    for name in extra:
        values = columns[name]
        if not isinstance(values, list):
            values = [values]
        if len(values) != rows:
            raise InvalidRequestError(
                f"{where}: column '{name}' has {len(values)} values, others have {rows}",
                field=name,
            )
        ignored[name] = values
    return Columns(data, rows or 0, ignored=ignored or None)


def _nonempty(columns: Columns, where: str) -> Columns:
    if columns.rows == 0:
        raise InvalidRequestError(f"{where}: no rows to predict", field=where)
    return columns


def decode_invocations(payload: Any, signature: Sequence[ColumnSpec]) -> Columns:
    """Decode an MLflow-style ``/invocations`` JSON payload.

    Accepts exactly one of ``dataframe_split`` (``{"columns": [...], "data": [[...]]}``),
    ``dataframe_records`` (``[{column: value}]``), ``instances`` or ``inputs`` (records, rows
    or ``{column: [values]}``), and a ``params`` object (see :func:`predict_method`). As in
    MLflow, named columns beyond the signature (ids, timestamps …) are not refused: they are
    left out of the prediction and returned in ``Columns.ignored``.

    Raises:
        InvalidRequestError: The payload's shape, columns or values do not fit the signature.
    """
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            "expected a JSON object with one of 'dataframe_split', 'dataframe_records', "
            f"'instances' or 'inputs', got {_type_name(payload)}"
        )
    keys = [
        k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in payload
    ]
    unknown = [k for k in payload if k not in {*keys, "params"}]
    if unknown:
        raise InvalidRequestError(f"unknown top-level key '{unknown[0]}'", field=unknown[0])
    if len(keys) != 1:
        raise InvalidRequestError(
            "expected exactly one of 'dataframe_split', 'dataframe_records', 'instances' or "
            f"'inputs', got {keys or 'none'}"
        )
    key = keys[0]
    body = payload[key]
    if key == "dataframe_split":
        if not isinstance(body, dict):
            raise InvalidRequestError(
                "dataframe_split: expected {'columns': [...], 'data': [[...]]}", field=key
            )
        columns = body.get("columns")
        data = body.get("data")
        if not isinstance(data, list):
            raise InvalidRequestError("dataframe_split.data: expected a list of rows", field=key)
        if columns is None:
            return _nonempty(_from_rows(signature, data, "dataframe_split.data"), key)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidRequestError(
                "dataframe_split.columns: expected a list of column names", field=key
            )
        if columns == schema_of(signature).names:
            return _nonempty(_from_rows(signature, data, "dataframe_split.data"), key)
        extra = _check_names(signature, columns, "dataframe_split.columns", extra_ok=True)
        order = {name: i for i, name in enumerate(columns)}
        width = len(columns)
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise InvalidRequestError(
                    f"dataframe_split.data[{i}]: expected a row of {width} values",
                    field=f"dataframe_split.data[{i}]",
                )
        cols = [_check_values(spec, [row[order[spec.name]] for row in data]) for spec in signature]
        ignored = {name: [row[order[name]] for row in data] for name in extra} or None
        return _nonempty(Columns(cols, len(data), ignored=ignored), key)
    if key == "dataframe_records":
        if not isinstance(body, list):
            raise InvalidRequestError("dataframe_records: expected a list of objects", field=key)
        return _nonempty(_from_records(signature, body, key), key)
    # instances / inputs
    if isinstance(body, dict):
        return _nonempty(_from_columnar(signature, body, key), key)
    if not isinstance(body, list):
        raise InvalidRequestError(f"{key}: expected a list or an object", field=key)
    if body and isinstance(body[0], dict):
        return _nonempty(_from_records(signature, body, key), key)
    if body and not isinstance(body[0], list) and len(signature) > 1:
        raise InvalidRequestError(
            f"{key}: expected rows of {len(signature)} values or objects of column values",
            field=key,
        )
    if body and not isinstance(body[0], list):
        body = [[value] for value in body]
    return _nonempty(_from_rows(signature, body, key), key)


# --- V2 -------------------------------------------------------------------------------------


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequestError(f"input '{name}': 'data' must be a list", field=name)
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        stack = [data]
        # Nested lists are allowed by the protocol; flatten row-major.
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
        return flat
    return data


def _decode_binary(raw: bytes, datatype: str, name: str) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise InvalidRequestError(f"input '{name}': truncated BYTES element", field=name)
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            chunk = raw[offset : offset + length]
            if len(chunk) != length:
                raise InvalidRequestError(f"input '{name}': truncated BYTES element", field=name)
            try:
                values.append(chunk.decode())
            except UnicodeDecodeError:
                raise InvalidRequestError(
                    f"input '{name}': BYTES element is not UTF-8 text", field=name
                ) from None
            offset += length
        return values
    np_dtype = _V2_NUMPY.get(datatype)
    if np_dtype is None:
        raise InvalidRequestError(
            f"input '{name}': binary data of datatype {datatype} is not supported", field=name
        )
    itemsize = np.dtype(np_dtype).itemsize
    if len(raw) % itemsize:
        raise InvalidRequestError(
            f"input '{name}': {len(raw)} bytes is not a whole number of {datatype} elements",
            field=name,
        )
    values = np.frombuffer(raw, dtype=np_dtype).tolist()
    return values


def _check_datatype(datatype: str, data: list[Any], name: str) -> None:
    """Refuse JSON tensor data its declared datatype cannot hold (binary data always fits)."""
    bounds = _V2_INT_RANGE.get(datatype)
    if bounds is not None:
        if not _types_fit("int", data):
            bad = next(v for v in data if type(v) is not int)
            raise InvalidRequestError(
                f"input '{name}': datatype {datatype} holds integers, got {_type_name(bad)} "
                f"{bad!r}",
                field=name,
            )
        low, high = bounds
        if data and (min(data) < low or max(data) > high):
            bad = next(v for v in data if v < low or v > high)
            raise InvalidRequestError(
                f"input '{name}': {bad!r} is out of range for datatype {datatype} "
                f"({low} to {high})",
                field=name,
            )
        return
    limit = _V2_FLOAT_MAX.get(datatype)
    if limit is not None:
        for value in data:
            if type(value) in (int, float) and abs(value) > limit:
                raise InvalidRequestError(
                    f"input '{name}': {value!r} is out of range for datatype {datatype} "
                    f"(magnitude up to {limit:g})",
                    field=name,
                )


@dataclass(slots=True)
class V2Request:
    """A decoded V2 inference request."""

    id: str | None
    columns: Columns
    outputs: list[dict[str, Any]] | None
    binary_output: bool


def _split_binary(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if header_length < 0 or header_length > len(body):
        raise InvalidRequestError(
            f"Inference-Header-Content-Length {header_length} does not fit a body of "
            f"{len(body)} bytes"
        )
    return body[:header_length], body[header_length:]


def parse_v2(body: bytes, header_length: int | None = None) -> tuple[dict[str, Any], bytes]:
    """Split a V2 request body into its JSON header (parsed) and its binary tensor data.

    Raises:
        InvalidRequestError: The body is not a JSON object or the header length is wrong.
    """
    head, binary = _split_binary(body, header_length)
    payload = loads_json(head)
    if not isinstance(payload, dict):
        raise InvalidRequestError(f"expected a JSON object, got {_type_name(payload)}")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequestError("'id' must be a string", field="id")
    return payload, binary


# One pass over the request's tensors checks every field the protocol allows, in order; the hot
# path of every V2 request, kept in one function.
def decode_v2(  # noqa: C901
    payload: dict[str, Any], signature: Sequence[ColumnSpec], binary: bytes = b""
) -> V2Request:
    """Decode a parsed V2 ``/infer`` request (see :func:`parse_v2`) against a signature.

    Inputs are either one tensor per column (shape ``[n]`` or ``[n, 1]``) or one 2-D tensor of
    shape ``[n, columns]`` whose columns follow the signature.

    Raises:
        InvalidRequestError: The request's tensors, shapes or values do not fit.
    """
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'inputs' must be a non-empty list of tensors", field="inputs")
    request_id = payload.get("id")
    binary_offset = 0
    tensors: list[tuple[str, str, list[int], list[Any]]] = []
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidRequestError(f"inputs[{i}] must be an object", field=f"inputs[{i}]")
        name = tensor.get("name")
        datatype = tensor.get("datatype")
        shape = tensor.get("shape")
        if not isinstance(name, str):
            raise InvalidRequestError(f"inputs[{i}]: 'name' is required", field=f"inputs[{i}]")
        if datatype not in _V2_KIND:
            raise InvalidRequestError(
                f"input '{name}': unknown datatype {datatype!r}; use one of {', '.join(_V2_KIND)}",
                field=name,
            )
        if (
            not isinstance(shape, list)
            or not shape
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidRequestError(
                f"input '{name}': 'shape' must be a non-empty list of non-negative integers",
                field=name,
            )
        params = tensor.get("parameters") or {}
        binary_size = params.get("binary_data_size") if isinstance(params, dict) else None
        if binary_size is not None:
            if type(binary_size) is not int or binary_size < 0:
                raise InvalidRequestError(
                    f"input '{name}': binary_data_size must be a non-negative integer, got "
                    f"{binary_size!r}",
                    field=name,
                )
            if binary_offset + binary_size > len(binary):
                raise InvalidRequestError(
                    f"input '{name}': binary_data_size {binary_size!r} runs past the body",
                    field=name,
                )
            data = _decode_binary(
                binary[binary_offset : binary_offset + binary_size], datatype, name
            )
            binary_offset += binary_size
        else:
            if "data" not in tensor:
                raise InvalidRequestError(f"input '{name}': 'data' is required", field=name)
            data = _flatten(tensor["data"], name)
            _check_datatype(datatype, data, name)
        size = math.prod(shape)
        if len(data) != size:
            raise InvalidRequestError(
                f"input '{name}': shape {shape} holds {size} values but 'data' has {len(data)}",
                field=name,
            )
        tensors.append((name, datatype, shape, data))

    by_name = {spec.name: spec for spec in signature}
    first_name, first_type, first_shape, first_data = tensors[0]
    width = len(signature)
    if len(tensors) == 1 and (first_name not in by_name or (width > 1 and len(first_shape) == 2)):
        # One 2-D tensor carrying every column.
        if len(first_shape) != 2 or first_shape[1] != width:
            raise InvalidRequestError(
                f"input '{first_name}': a single tensor must have shape [n, {width}] for the "
                f"columns {[s.name for s in signature]}, got {first_shape}",
                field=first_name,
            )
        kind = _V2_KIND[first_type]
        schema = schema_of(signature)
        block = schema.block_kind
        for spec in signature if block is None or kind not in _ACCEPTS[block] else ():
            if kind not in _ACCEPTS[spec.kind]:
                raise InvalidRequestError(
                    f"input '{first_name}': datatype {first_type} cannot feed column "
                    f"'{spec.name}' ({spec.dtype}); send one input per column",
                    field=spec.name,
                )
        if block is not None and _types_fit(block, first_data):
            _check_block_range(schema, first_data)
            columns = Columns(None, first_shape[0], first_data)
        else:
            data = [_check_values(spec, first_data[j::width]) for j, spec in enumerate(signature)]
            columns = Columns(data, first_shape[0])
    else:
        _check_names(signature, (t[0] for t in tensors), "inputs")
        given = {t[0]: t for t in tensors}
        rows: int | None = None
        data = []
        for spec in signature:
            name, datatype, shape, values = given[spec.name]
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise InvalidRequestError(
                    f"input '{name}': shape must be [n] or [n, 1] for a column input, got {shape}",
                    field=name,
                )
            if _V2_KIND[datatype] not in _ACCEPTS[spec.kind]:
                raise InvalidRequestError(
                    f"input '{name}': datatype {datatype} does not fit column '{name}' "
                    f"({spec.dtype}); send {v2_input_datatype(spec)}",
                    field=name,
                )
            if rows is None:
                rows = shape[0]
            elif shape[0] != rows:
                raise InvalidRequestError(
                    f"input '{name}': {shape[0]} rows, but other inputs have {rows}", field=name
                )
            data.append(_check_values(spec, values))
        columns = Columns(data, rows or 0)
    if columns.rows == 0:
        raise InvalidRequestError("inputs: no rows to predict", field="inputs")

    outputs = payload.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list) and all(isinstance(o, dict) and "name" in o for o in outputs)
    ):
        raise InvalidRequestError("'outputs' must be a list of {'name': ...}", field="outputs")
    params = payload.get("parameters")
    binary_output = bool(isinstance(params, dict) and params.get("binary_data_output"))
    return V2Request(request_id, columns, outputs, binary_output)


def v2_outputs(
    requested: list[dict[str, Any]] | None,
    available: Sequence[str],
    default: Sequence[str],
    *,
    model: str,
    binary_output: bool = False,
) -> list[tuple[str, bool]]:
    """The outputs a V2 request asks for, each with whether it goes as binary tensor data.

    Without ``outputs`` in the request, the ``default`` ones are answered (as MLServer's
    scikit-learn runtime answers ``predict`` only); ``binary_data_output`` in the request's
    parameters, or ``binary_data`` in an output's, asks for binary data.

    Raises:
        InvalidRequestError: An output was requested that the model does not have.
    """
    if requested is None:
        return [(name, binary_output) for name in default]
    chosen: dict[str, bool] = {}
    for out in requested:
        name = out["name"]
        if name not in available:
            raise InvalidRequestError(
                f"outputs: model '{model}' has no output {name!r}; it has "
                f"{', '.join(repr(a) for a in available)}",
                field="outputs",
            )
        params = out.get("parameters")
        binary = binary_output
        if isinstance(params, dict) and "binary_data" in params:
            binary = bool(params["binary_data"])
        chosen[name] = binary
    return list(chosen.items())


def encode_v2_response(
    *,
    model: str,
    version: str,
    request_id: str | None,
    tensors: Sequence[tuple[str, np.ndarray, bool]],
) -> tuple[bytes, int | None]:
    """Encode a V2 inference response of ``(name, values, binary)`` output tensors.

    Returns:
        The body and, when binary tensor data was asked for, the JSON header's length (for
        the ``Inference-Header-Content-Length`` header).
    """
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, result, binary in tensors:
        datatype = v2_datatype_for(result)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(result.shape)}
        if binary and datatype != "BYTES":
            blob = np.ascontiguousarray(result).astype(result.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif result.dtype.kind in "biuf":
            tensor["data"] = np.ascontiguousarray(result).ravel()
        else:
            tensor["data"] = [str(v) for v in result.ravel().tolist()]
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request_id is not None:
        response["id"] = request_id
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if blobs:
        return head + b"".join(blobs), len(head)
    return head, None


# --- /invocations answers ---------------------------------------------------------------------

#: What an ``/invocations`` request may ask to be answered with (``params.predict_method``).
PREDICT_METHODS = ("predict", "predict_proba")
# A warning header names at most this many ignored columns, each cut to this many characters.
_NOTE_NAMES = 10
_NOTE_NAME_CHARS = 64


def predict_method(params: Any, query: str | None = None) -> str | None:
    """What an ``/invocations`` request asks to be answered with, None for the default.

    ``params.predict_method`` as in MLflow 2.x inference params (``predict``: class labels,
    ``predict_proba``: class probabilities), else the ``?predict_method=`` query parameter.

    Raises:
        InvalidRequestError: ``params`` is not an object, or the method is unknown.
    """
    value: Any = None
    if params is not None:
        if not isinstance(params, dict):
            raise InvalidRequestError("params: expected an object", field="params")
        value = params.get("predict_method")
    if value is None:
        value = query
    if value is None:
        return None
    if value not in PREDICT_METHODS:
        raise InvalidRequestError(
            f"params.predict_method: {value!r} is not one of {', '.join(PREDICT_METHODS)}",
            field="predict_method",
        )
    return str(value)


def ignored_note(names: Sequence[str]) -> str:
    """The warning that columns beyond the signature were ignored: one line of ASCII, a
    bounded number of names (it goes into a response header and the server log)."""
    # json.dumps escapes quotes, control characters and non-ASCII: a name cannot break a
    # header line or smuggle another header in.
    shown = [json.dumps(name[:_NOTE_NAME_CHARS]) for name in names[:_NOTE_NAMES]]
    more = len(names) - len(shown)
    tail = f" and {more} more" if more > 0 else ""
    return f"columns not in the model's signature were ignored: {', '.join(shown)}{tail}"
