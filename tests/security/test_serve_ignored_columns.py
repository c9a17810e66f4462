"""Columns beyond a model's signature, sent to do harm: names that would split the warning
header, thousands of columns, names the monitors reserve. The answer stays one bounded header
line, the model's inputs in the log stay the model's columns."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import orjson

from opsloop.serve import JsonlSink, ServerConfig, read_jsonl
from tests.serve.conftest import run_server
from tests.serve.models import churn_model

RECORD = {"age": 30, "income": 61.5, "city": "paris", "member": True}


def _raw_post(port: int, body: bytes) -> bytes:
    """The raw response head: what a client sees before any library parses it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def test_hostile_column_names_cannot_split_the_warning_header(tmp_path: Path) -> None:
    config = ServerConfig(
        models=[churn_model()], port=0, prediction_sink=JsonlSink(tmp_path / "preds.jsonl")
    )
    evil = {
        "x\r\nset-cookie: session=stolen": 1,
        "y\nlocation: http://evil.example": 2,
        "caf\u00e9 \u2603": 3,
        "nul\x00byte": 4,
    }
    with run_server(config) as running:
        head = _raw_post(running.port, orjson.dumps({"dataframe_records": [{**RECORD, **evil}]}))
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        names = [line.split(b":", 1)[0].lower() for line in lines[1:]]
        assert b"set-cookie" not in names and b"location" not in names
        [warning] = [line for line in lines if line.lower().startswith(b"x-opsloop-warning:")]
        assert warning.isascii() and b"\n" not in warning and b"\x00" not in warning
        assert b"\\u2603" in warning


def test_thousands_of_extra_columns_give_a_bounded_answer(tmp_path: Path) -> None:
    config = ServerConfig(
        models=[churn_model()], port=0, prediction_sink=JsonlSink(tmp_path / "preds.jsonl")
    )
    many = {f"{'c' * 200}{i}": i for i in range(5_000)}
    with run_server(config) as running:
        r = httpx.post(
            f"{running.url}/invocations",
            json={"dataframe_records": [{**RECORD, **many}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text[:200]
        warning = r.headers["x-opsloop-warning"]
        assert len(warning) < 1_000 and warning.endswith(" and 4990 more")
        assert httpx.post(f"{running.url}/invocations", json={"instances": [RECORD]}).is_success


def test_names_the_monitors_reserve_stay_out_of_the_inputs(tmp_path: Path) -> None:
    config = ServerConfig(
        models=[churn_model()], port=0, prediction_sink=JsonlSink(tmp_path / "preds.jsonl")
    )
    # A monitor window refuses input columns named like its own; a client's extra columns
    # must not reach the inputs under those names (or any other).
    poison = {"label": 1, "prediction": 0.99, "output": [1, 0], "request_id": "other"}
    with run_server(config) as running:
        r = httpx.post(f"{running.url}/invocations", json={"instances": [{**RECORD, **poison}]})
        assert r.status_code == 200, r.text
    (logged,) = read_jsonl(tmp_path / "preds.jsonl")
    assert set(logged["inputs"]) == set(RECORD)
    assert logged["ids"] == {name: [value] for name, value in poison.items()}
    assert logged["request_id"] == r.headers["x-request-id"] != "other"
