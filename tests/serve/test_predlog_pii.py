"""The prediction log keeps personal-data columns hashed (salted SHA-256) or not at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from opsloop.serve import JsonlSink, ServerConfig, read_jsonl
from opsloop.serve.base import hash_value
from tests.serve.conftest import run_server
from tests.serve.models import churn_model

ROWS = [[30, 61.5, "paris", True], [52, 38.0, "nice", False]]
COLUMNS = ["age", "income", "city", "member"]
SALT = "0f" * 16
EMAILS = ["ana@example.com", "bo@example.org"]


def _records() -> list[dict[str, object]]:
    return [
        {"email": EMAILS[i], **dict(zip(COLUMNS, row, strict=True))} for i, row in enumerate(ROWS)
    ]


def _serve(tmp_path: Path, **pii: object) -> list[dict]:
    config = ServerConfig(
        models=[churn_model()],
        port=0,
        prediction_sink=JsonlSink(tmp_path / "preds.jsonl"),
        **pii,
    )
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/invocations", json={"dataframe_records": _records()})
        assert r.status_code == 200, r.text
    return read_jsonl(tmp_path / "preds.jsonl")


def test_a_pii_column_is_logged_salted_and_hashed(tmp_path: Path) -> None:
    [pred] = _serve(tmp_path, pii_columns=["email", "city"], pii_salt=SALT)
    want = ["sha256:" + hashlib.sha256(SALT.encode() + e.encode()).hexdigest() for e in EMAILS]
    assert pred["ids"] == {"email": want}
    assert pred["inputs"]["city"] == [hash_value(row[2], SALT.encode()) for row in ROWS]
    assert pred["inputs"]["age"] == [row[0] for row in ROWS]  # not PII: as sent
    text = (tmp_path / "preds.jsonl").read_text()
    assert not any(e in text for e in EMAILS)
    # Salted: not the bare SHA-256 anyone could look up.
    assert hashlib.sha256(EMAILS[0].encode()).hexdigest() not in text


def test_drop_leaves_pii_columns_out_and_keep_keeps_them(tmp_path: Path) -> None:
    [pred] = _serve(tmp_path / "drop", pii_columns=["email"], pii_policy="drop")
    assert "ids" not in pred or "email" not in pred["ids"]
    assert set(pred["inputs"]) == set(COLUMNS)
    [pred] = _serve(tmp_path / "keep", pii_columns=["email"], pii_policy="keep")
    assert pred["ids"] == {"email": EMAILS}


def test_hashing_without_a_salt_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs pii_salt"):
        ServerConfig(models=[churn_model()], port=0, pii_columns=["email"])
