"""Detector checkpoints: JSON state that resumes exactly, and refuses anything but detectors."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from opsloop.aiops.detectors import DETECTORS, Detector, get_detector
from opsloop.aiops.detectors.state import (
    detector_digest,
    dump_state,
    dumps_state,
    load_state,
    loads_state,
)
from opsloop.errors import AIOpsError


def _make(name: str) -> Detector:
    params = {}
    if "seed" in inspect.signature(DETECTORS[name].__init__).parameters:
        params["seed"] = 42
    return get_detector(name, **params)


def _series(n: int) -> tuple[list[float], list[datetime]]:
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(n)]
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    values = 50 + 10 * day + rng.normal(0, 1, n)
    values[1500:1510] += 40.0
    values[2100] = np.nan
    return [float(v) for v in values], stamps


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("cut", [5, 1234])
def test_a_resumed_detector_scores_exactly_as_an_uninterrupted_one(name: str, cut: int) -> None:
    values, stamps = _series(2400)
    whole = _make(name).score_many(values, stamps)
    first = _make(name)
    head = first.score_many(values[:cut], stamps[:cut])
    text = dumps_state(first)
    json.loads(text)  # plain JSON, no NaN tokens
    resumed = loads_state(text)
    assert type(resumed) is type(first)
    assert resumed.get_params() == first.get_params()
    tail = resumed.score_many(values[cut:], stamps[cut:])
    assert np.array_equal(np.concatenate([head, tail]), whole)
    # And the state after resuming is the state of the uninterrupted run.
    again = _make(name)
    again.score_many(values, stamps)
    assert dumps_state(resumed) == dumps_state(again)


def test_digest_follows_class_and_parameters() -> None:
    assert detector_digest(get_detector("context")) == detector_digest(get_detector("context"))
    assert detector_digest(get_detector("context")) != detector_digest(
        get_detector("context", rest_points=31)
    )
    assert detector_digest(get_detector("mad")) != detector_digest(get_detector("ewma"))


def test_a_checkpoint_naming_a_foreign_class_is_refused() -> None:
    state = dump_state(get_detector("ewma"))
    state["detector"]["o"] = "subprocess:Popen"
    with pytest.raises(AIOpsError, match="outside the detectors"):
        load_state(state)
    state["detector"]["o"] = "opsloop.aiops.detectors.base:math"
    with pytest.raises(AIOpsError, match="unknown detector class"):
        load_state(state)


def test_a_malformed_checkpoint_is_refused() -> None:
    with pytest.raises(AIOpsError, match="not JSON"):
        loads_state("{not json")
    with pytest.raises(AIOpsError, match="format"):
        load_state({"format": 99, "detector": None})
    with pytest.raises(AIOpsError, match="does not hold a detector"):
        load_state({"format": 1, "detector": {"l": [1, 2]}})
    with pytest.raises(AIOpsError, match="malformed"):
        load_state({"format": 1, "detector": {"zz": 1}})


def test_a_value_that_cannot_be_checkpointed_is_named() -> None:
    detector = get_detector("ewma")
    detector._mean = object()  # type: ignore[assignment]
    with pytest.raises(AIOpsError, match="cannot checkpoint a value of type object"):
        dump_state(detector)
