"""Decoding V2 and MLflow-style payloads against a signature, and encoding V2 answers."""

from __future__ import annotations

import re
import struct

import numpy as np
import orjson
import pandas as pd
import pytest

from opsloop.errors import InvalidRequestError, RegistryError
from opsloop.serve import ColumnSpec, signature_from_frame
from opsloop.serve.batching import FrameBuilder
from opsloop.serve.codec import (
    Schema,
    decode_invocations,
    decode_v2,
    encode_v2_response,
    ignored_note,
    media_type,
    parse_v2,
    predict_method,
    v2_outputs,
)

SIG = [
    ColumnSpec(name="age", dtype="int64"),
    ColumnSpec(name="income", dtype="float64"),
    ColumnSpec(name="city", dtype="object"),
    ColumnSpec(name="member", dtype="bool"),
]
NUM = Schema([ColumnSpec(name=f"f{i}", dtype="float64") for i in range(3)])


def v2(*inputs: dict, **extra: object) -> dict:
    return {"inputs": list(inputs), **extra}


def col(name: str, datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def frame(schema, columns) -> pd.DataFrame:
    return FrameBuilder(schema).build([columns])


def test_v2_one_tensor_per_column_builds_typed_frame() -> None:
    req = decode_v2(
        v2(
            col("age", "INT64", [30, 41]),
            col("income", "FP32", [50.5, 7]),
            col("city", "BYTES", ["paris", "nice"]),
            col("member", "BOOL", [True, False]),
            id="r1",
        ),
        SIG,
    )
    assert req.id == "r1"
    df = frame(SIG, req.columns)
    assert list(df.columns) == ["age", "income", "city", "member"]
    assert [str(t) for t in df.dtypes] == ["int64", "float64", "object", "bool"]
    assert df["income"].tolist() == [50.5, 7.0]
    assert df["city"].tolist() == ["paris", "nice"]


def test_v2_single_2d_tensor_and_nested_data() -> None:
    flat = decode_v2(v2(col("x", "FP64", [1, 2, 3, 4, 5, 6], [2, 3])), NUM)
    nested = decode_v2(v2(col("x", "FP64", [[1, 2, 3], [4, 5, 6]], [2, 3])), NUM)
    for req in (flat, nested):
        df = frame(NUM, req.columns)
        assert df.to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]
        assert df.columns.tolist() == ["f0", "f1", "f2"]


def test_v2_binary_tensor_data() -> None:
    data = np.array([[1.5, 2.5, 3.5]], dtype="<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 3],
                    "parameters": {"binary_data_size": data.nbytes},
                }
            ]
        }
    )
    payload, binary = parse_v2(header + data.tobytes(), len(header))
    req = decode_v2(payload, NUM, binary)
    assert frame(NUM, req.columns).to_numpy().tolist() == [[1.5, 2.5, 3.5]]


def test_v2_binary_bytes_elements() -> None:
    sig = [ColumnSpec(name="city", dtype="object")]
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"paris", b"nice"))
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "city",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    payload, binary = parse_v2(header + raw, len(header))
    assert decode_v2(payload, sig, binary).columns.as_dict(sig) == {"city": ["paris", "nice"]}


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        (
            [col("age", "INT64", [1]), col("income", "FP64", [1.0]), col("city", "BYTES", ["a"])],
            "member",
            "missing column",
        ),
        (
            [
                col("age", "INT64", [1]),
                col("income", "FP64", [1.0]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
                col("zip", "INT64", [1]),
            ],
            "zip",
            "unknown column",
        ),
        (
            [
                col("age", "INT64", [1]),
                col("income", "BYTES", ["rich"]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
            ],
            "income",
            "datatype BYTES does not fit",
        ),
        (
            [
                col("age", "INT64", [1]),
                col("income", "FP64", ["rich"]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
            ],
            "income",
            "expected a number",
        ),
        (
            [
                col("age", "FP64", [1.5]),
                col("income", "FP64", [1.0]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
            ],
            "age",
            "datatype FP64 does not fit",
        ),
        (
            [
                col("age", "INT64", [1, 2]),
                col("income", "FP64", [1.0]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
            ],
            "income",
            "rows",
        ),
        (
            [
                {"name": "age", "datatype": "INT64", "shape": [3], "data": [1, 2]},
                col("income", "FP64", [1.0]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [True]),
            ],
            "age",
            "holds 3 values",
        ),
        (
            [
                col("age", "INT64", [1]),
                col("income", "FP64", [1.0]),
                col("city", "BYTES", ["a"]),
                col("member", "BOOL", [1]),
            ],
            "member",
            "expected true or false",
        ),
        (
            [
                col("age", "INT64", [1]),
                col("income", "FP64", [1.0]),
                col("city", "BYTES", [3]),
                col("member", "BOOL", [True]),
            ],
            "city",
            "expected a string",
        ),
    ],
)
def test_v2_errors_name_the_field(inputs: list[dict], field: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_v2(v2(*inputs), SIG)
    assert info.value.field == field
    assert words in info.value.message
    assert field in info.value.message


def test_v2_2d_tensor_wrong_width_and_wrong_values() -> None:
    with pytest.raises(InvalidRequestError, match=r"shape \[n, 3\]"):
        decode_v2(v2(col("x", "FP64", [1, 2], [1, 2])), NUM)
    with pytest.raises(InvalidRequestError, match="column 'f1'") as info:
        decode_v2(v2(col("x", "FP64", [1.0, "two", 3.0], [1, 3])), NUM)
    assert info.value.field == "f1"
    with pytest.raises(InvalidRequestError, match="send one input per column"):
        decode_v2(v2(col("x", "FP64", [1, 2.0, 3, 4], [1, 4])), SIG)


def test_v2_malformed_bodies() -> None:
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        parse_v2(b"{not json")
    with pytest.raises(InvalidRequestError, match="empty"):
        parse_v2(b"")
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse_v2(b"[1, 2]")
    with pytest.raises(InvalidRequestError, match="non-empty list"):
        decode_v2({"inputs": []}, NUM)
    with pytest.raises(InvalidRequestError, match="unknown datatype"):
        decode_v2(v2(col("x", "FP128", [1, 2, 3], [1, 3])), NUM)
    with pytest.raises(InvalidRequestError, match="no rows"):
        decode_v2(v2(col("x", "FP64", [], [0, 3])), NUM)
    with pytest.raises(InvalidRequestError, match="does not fit a body"):
        parse_v2(b"{}", 10)


ROWS = [[30, 50.5, "paris", True], [41, 7.0, "nice", False]]
SIG_NAMES = ["age", "income", "city", "member"]
RECORDS = [dict(zip(SIG_NAMES, row, strict=True)) for row in ROWS]
COLUMNAR = {name: [row[i] for row in ROWS] for i, name in enumerate(SIG_NAMES)}


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["age", "income", "city", "member"], "data": ROWS}},
        {
            "dataframe_split": {
                "columns": ["member", "city", "income", "age"],
                "data": [row[::-1] for row in ROWS],
            }
        },
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"instances": ROWS},
        {
            "inputs": {
                "age": [30, 41],
                "income": [50.5, 7.0],
                "city": ["paris", "nice"],
                "member": [True, False],
            }
        },
        {"inputs": RECORDS, "params": {"ignored": True}},
    ],
)
def test_invocations_formats_agree(payload: dict) -> None:
    df = frame(SIG, decode_invocations(payload, SIG))
    assert df.to_dict("records") == RECORDS


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"dataframe_records": [{"age": 1, "income": 2.0, "city": "a"}]}, "member", "missing"),
        ({"dataframe_records": [{**RECORDS[0], "income": "x"}]}, "income", "expected a number"),
        ({"instances": [[1, 2.0, "a"]]}, "instances[0]", "3 values"),
        ({"dataframe_split": {"columns": ["age"], "data": [[1]]}}, "income", "missing"),
        (
            {
                "dataframe_split": {
                    "columns": [*SIG_NAMES, "age"],
                    "data": [[30, 1.0, "a", True, 1]],
                }
            },
            "age",
            "given twice",
        ),
        ({"inputs": {**COLUMNAR, "id": [1]}}, "id", "'id' has 1 values, others have 2"),
        ({"dataframe_records": RECORDS, "instances": RECORDS}, None, "exactly one"),
        ({"records": RECORDS}, "records", "unknown top-level key"),
        ({"dataframe_records": []}, "dataframe_records", "no rows"),
    ],
)
def test_invocations_errors(payload: dict, field: str | None, words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words) as info:
        decode_invocations(payload, SIG)
    assert info.value.field == field


def test_numeric_rows_travel_flat_and_mix_with_columns() -> None:
    flat = decode_invocations({"instances": [[1, 2.0, 3.0]]}, NUM)
    columnar = decode_invocations({"inputs": {"f0": [4.0], "f1": [5.0], "f2": [None]}}, NUM)
    assert flat.flat == [1, 2.0, 3.0]
    df = FrameBuilder(NUM).build([flat, columnar])
    assert df.shape == (2, 3)
    assert str(df.dtypes.iloc[0]) == "float64"
    assert df.iloc[0].tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(df.iloc[1, 2])


def test_datetime_and_string_columns() -> None:
    sig = [ColumnSpec(name="when", dtype="datetime64[ns]"), ColumnSpec(name="s", dtype="string")]
    cols = decode_invocations({"instances": [["2024-01-02T03:04:05", "x"]]}, sig)
    df = frame(sig, cols)
    assert str(df.dtypes.iloc[0]) == "datetime64[ns]"
    assert df.iloc[0, 0] == pd.Timestamp("2024-01-02T03:04:05")
    assert str(df.dtypes.iloc[1]) == "string"
    with pytest.raises(InvalidRequestError, match="ISO 8601") as info:
        decode_invocations({"instances": [["yesterday", "x"]]}, sig)
    assert info.value.field == "when"


def test_encode_v2_json_and_binary() -> None:
    result = np.array([[0.25, 0.75]])
    body, head = encode_v2_response(
        model="m", version="1", request_id="r", tensors=[("predict_proba", result, False)]
    )
    assert head is None
    doc = orjson.loads(body)
    assert doc["id"] == "r"
    assert doc["outputs"][0] == {
        "name": "predict_proba",
        "datatype": "FP64",
        "shape": [1, 2],
        "data": [0.25, 0.75],
    }
    labels = np.array(["yes"], dtype=object)
    body, head = encode_v2_response(
        model="m",
        version="1",
        request_id=None,
        tensors=[("predict", labels, True), ("predict_proba", result, True)],
    )
    assert head is not None
    meta = orjson.loads(body[:head])
    # Text goes as JSON even when binary data is asked for; numbers as binary.
    assert meta["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [1],
        "data": ["yes"],
    }
    assert meta["outputs"][1]["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(body[head:], "<f8").tolist() == [0.25, 0.75]


def test_v2_outputs_follow_the_request() -> None:
    available = ["predict", "predict_proba"]
    assert v2_outputs(None, available, ["predict"], model="m") == [("predict", False)]
    asked = [{"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "predict"}]
    assert v2_outputs(asked, available, ["predict"], model="m", binary_output=False) == [
        ("predict_proba", True),
        ("predict", False),
    ]
    with pytest.raises(InvalidRequestError, match="no output 'labels'; it has 'predict', "):
        v2_outputs([{"name": "labels"}], available, ["predict"], model="m")


def test_columns_beyond_the_signature_are_kept_aside() -> None:
    rows = [{**r, "customer_id": f"c-{i}"} for i, r in enumerate(RECORDS)]
    rows[1]["signup_date"] = "2024-01-01"
    for payload in (
        {"dataframe_records": rows},
        {"instances": rows},
        {
            "inputs": {
                **COLUMNAR,
                "customer_id": ["c-0", "c-1"],
                "signup_date": [None, "2024-01-01"],
            }
        },
        {
            "dataframe_split": {
                "columns": ["signup_date", *SIG_NAMES, "customer_id"],
                "data": [
                    [None, *RECORDS[0].values(), "c-0"],
                    ["2024-01-01", *RECORDS[1].values(), "c-1"],
                ],
            }
        },
    ):
        cols = decode_invocations(payload, SIG)
        assert frame(SIG, cols).to_dict("records") == RECORDS
        assert cols.ignored is not None
        assert cols.ignored["customer_id"] == ["c-0", "c-1"]
        assert cols.ignored["signup_date"] == [None, "2024-01-01"]
    exact = decode_invocations({"dataframe_records": RECORDS}, SIG)
    assert exact.ignored is None


def test_predict_method_from_params_or_query() -> None:
    assert predict_method(None) is None
    assert predict_method({"predict_method": "predict_proba"}) == "predict_proba"
    assert predict_method({"other": 1}, "predict") == "predict"
    # The body's params win over the query.
    assert predict_method({"predict_method": "predict"}, "predict_proba") == "predict"
    with pytest.raises(InvalidRequestError, match="'transform' is not one of predict"):
        predict_method({"predict_method": "transform"})
    with pytest.raises(InvalidRequestError, match="params: expected an object"):
        predict_method([1])


def test_ignored_note_is_one_bounded_ascii_line() -> None:
    names = ["customer_id", 'evil"\r\nset-cookie: x', "caf\u00e9", *[f"c{i}" for i in range(20)]]
    note = ignored_note(names)
    assert note.isascii() and "\n" not in note and "\r" not in note
    assert note.startswith('columns not in the model\'s signature were ignored: "customer_id", ')
    assert note.endswith(" and 13 more")
    assert len(ignored_note(["x" * 10_000] * 50)) < 1000


def test_signature_from_frame_and_column_spec_validation() -> None:
    df = pd.DataFrame(
        {"a": [1], "b": [1.0], "c": ["x"], "d": [True], "e": pd.to_datetime(["2024-01-01"])}
    )
    kinds = [spec.kind for spec in signature_from_frame(df)]
    assert kinds == ["int", "float", "str", "bool", "datetime"]
    with pytest.raises(ValueError, match="unsupported dtype"):
        ColumnSpec(name="x", dtype="complex128")
    with pytest.raises(RegistryError, match="column 'p'"):
        signature_from_frame(pd.DataFrame({"p": pd.period_range("2024-01", periods=1, freq="M")}))


# -- numbers a column's dtype cannot hold ----------------------------------------------------

I8 = [ColumnSpec(name="a", dtype="int8"), ColumnSpec(name="b", dtype="int64")]
I32_BLOCK = Schema([ColumnSpec(name=f"i{k}", dtype="int32") for k in range(3)])
F32 = [ColumnSpec(name="x", dtype="float32")]


@pytest.mark.parametrize(
    ("payload", "signature", "field", "words"),
    [
        # one past int64 (orjson reads it as an exact int), and a float that is integral
        ({"instances": [[9223372036854775808, 1.0, "x", True]]}, SIG, "age", "out of range"),
        ({"instances": [[1e20, 1.0, "x", True]]}, SIG, "age", "1e+20 is out of range"),
        ({"instances": [[-(2**63) - 1, 1.0, "x", True]]}, SIG, "age", "out of range"),
        ({"inputs": {"a": [300], "b": [1]}}, I8, "a", "300 is out of range (-128 to 127)"),
        ({"dataframe_records": [{"a": -129, "b": 1}]}, I8, "a", "(-128 to 127)"),
        ({"instances": [[1, 2, 3], [4, 2**31, 6]]}, I32_BLOCK, "i1", "2147483648 is out of"),
        ({"instances": [1e39]}, F32, "x", "out of range (magnitude up to 3.40282e+38)"),
    ],
)
def test_invocations_out_of_range_numbers_are_400(
    payload: dict, signature: list[ColumnSpec], field: str, words: str
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(words)) as info:
        decode_invocations(payload, signature)
    assert info.value.field == field


def test_in_range_numbers_still_build_frames() -> None:
    cols = decode_invocations({"inputs": {"a": [-128, 127], "b": [2**63 - 1, -(2**63)]}}, I8)
    df = frame(I8, cols)
    assert df["a"].tolist() == [-128, 127] and str(df["a"].dtype) == "int8"
    block = decode_invocations({"instances": [[1, -(2**31), 2**31 - 1]]}, I32_BLOCK)
    assert frame(I32_BLOCK, block).iloc[0].tolist() == [1, -(2**31), 2**31 - 1]


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        (col("a", "INT8", [300]), "300 is out of range for datatype INT8 (-128 to 127)"),
        (col("a", "UINT8", [-1]), "-1 is out of range for datatype UINT8 (0 to 255)"),
        (col("a", "INT16", [40000]), "for datatype INT16"),
        (col("a", "UINT64", [-5]), "for datatype UINT64"),
        (col("a", "INT8", [1.5]), "datatype INT8 holds integers, got float 1.5"),
        (col("a", "INT32", [True]), "datatype INT32 holds integers, got bool True"),
    ],
)
def test_v2_integer_data_must_fit_its_datatype(tensor: dict, words: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(words)) as info:
        decode_v2(v2(tensor, col("b", "INT64", [1])), I8)
    assert info.value.field == "a"


def test_v2_values_must_fit_the_column_and_float_datatypes() -> None:
    # An INT64 tensor may feed an int8 column, but only with values int8 holds.
    with pytest.raises(InvalidRequestError, match=re.escape("column 'a' (int8): 200 is out")):
        decode_v2(v2(col("a", "INT64", [200]), col("b", "INT64", [1])), I8)
    with pytest.raises(InvalidRequestError, match="for datatype FP16"):
        decode_v2(v2(col("x", "FP16", [70000.0])), F32)
    block = v2(col("all", "INT32", [1, 2, 2**31], shape=[1, 3]))
    with pytest.raises(InvalidRequestError, match="for datatype INT32"):
        decode_v2(block, I32_BLOCK)
    block = v2(col("all", "INT64", [1, 2, 2**31], shape=[1, 3]))
    with pytest.raises(InvalidRequestError, match=re.escape("column 'i2' (int32)")):
        decode_v2(block, I32_BLOCK)


def test_v2_negative_binary_data_size_is_a_clear_error() -> None:
    tensor = {"name": "f0", "datatype": "FP64", "shape": [1], "parameters": {}}
    for size in (-8, "8", 1.5):
        tensor["parameters"] = {"binary_data_size": size}
        with pytest.raises(InvalidRequestError, match="binary_data_size must be a non-negative"):
            decode_v2(v2(tensor), NUM, b"\0" * 64)


def test_media_type_ignores_parameters_and_case() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type("application/jsonx") == "application/jsonx"
    assert media_type(None) == media_type("") == ""
