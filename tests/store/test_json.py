"""JSON columns: non-finite floats are stored as null; reading is fast and reads old rows."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from opsloop.store import Store, open_store
from opsloop.store.base import load_json


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def test_load_json_reads_what_json_dumps_writes() -> None:
    plain = {"a": [1, 2.5, "x", None, True], "b": {"c": 10**18}}
    assert load_json(json.dumps(plain)) == plain
    assert load_json(json.dumps(plain).encode()) == plain
    odd = load_json(json.dumps({"nan": math.nan, "inf": math.inf, "big": 10**30}))
    assert math.isnan(odd["nan"]) and odd["inf"] == math.inf and odd["big"] == 10**30


def test_non_finite_values_are_stored_as_null_on_every_backend(store: Store) -> None:
    store.predictions.log(
        [
            {
                "request_id": "r1",
                "deployment": "d",
                "model_name": "m",
                "model_version": "1",
                "time": datetime(2026, 1, 1, tzinfo=UTC),
                "latency_ms": 1.0,
                "shadow": False,
                "inputs": {"x": [math.nan, 1.5], "y": [math.inf, -math.inf]},
                "outputs": {"values": [0.25]},
            }
        ]
    )
    (row,) = store.predictions.read(deployment="d")
    assert row.inputs == {"x": [None, 1.5], "y": [None, None]}
    assert row.outputs == {"values": [0.25]}
