"""Metric points are checked at the call: a bad one is refused there, and nothing is logged."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

import opsloop
from opsloop.context import Project
from opsloop.errors import TrackingError


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "1-256 characters"),
        ("k" * 257, "1-256 characters"),
        ("loss\x00", "unprintable"),
        ("loss\nacc", "unprintable"),
        ("\ud800", "unprintable"),
        (3, "is not a string"),
        (["loss"], "is not a string"),
    ],
)
def test_bad_keys_are_refused(project: Project, key: Any, message: str) -> None:
    with opsloop.start_run() as run:
        with pytest.raises(TrackingError, match=message):
            run.log_metric(key, 1.0)
        assert len(run._buffer) == 0
    assert project.store.runs.count_metric_points(run.id) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": "1.5"}, "is not a number"),
        ({"value": None}, "is not a number"),
        ({"value": [1.0]}, "is not a number"),
        ({"value": 1j}, "is not a number"),
        ({"value": np.ones(3)}, "is not a number"),
        ({"value": 10**400}, "too large for a float"),
        ({"step": 2**63}, "out of range"),
        ({"step": -(2**63) - 1}, "out of range"),
        ({"step": 1.5}, "not an integer"),
        ({"step": True}, "not an integer"),
        ({"step": "3"}, "not an integer"),
        ({"timestamp": -1}, "between 1970 and 9999"),
        ({"timestamp": 2**70}, "between 1970 and 9999"),
        ({"timestamp": 1.7e12}, "not an integer"),
    ],
)
def test_bad_points_are_refused_and_leave_no_trace(
    project: Project, kwargs: dict[str, Any], message: str
) -> None:
    with opsloop.start_run() as run:
        run.log_metric("loss", 0.5)
        with pytest.raises(TrackingError, match=f"metric 'loss': .*{message}"):
            run.log_metric("loss", **{"value": 1.0, **kwargs})
        run.log_metric("loss", 0.25)  # the refused call did not take a step
    steps = [p.step for p in project.store.runs.metric_history(run.id, "loss")]
    assert steps == [0, 1]


def test_every_real_number_is_accepted(project: Project) -> None:
    values: list[Any] = [
        math.nan,
        math.inf,
        -math.inf,
        3,
        True,
        np.float32(0.5),
        np.float64(0.25),
        np.int64(7),
        Decimal("1.5"),
        np.array(2.0),
    ]
    with opsloop.start_run() as run:
        for v in values:
            run.log_metric("m", v)
        run.log_metric("m", 1.0, step=np.int64(2**62), timestamp=np.int64(1_700_000_000_000))
        run.log_metric("m", 1.0, step=-(2**63))
    history = project.store.runs.metric_history(run.id, "m")
    assert [p.step for p in history] == [-(2**63), *range(len(values)), 2**62]
    got = [p.value for p in history[1:-1]]
    assert math.isnan(got[0]) and got[1:3] == [math.inf, -math.inf]
    assert got[3:] == [3.0, 1.0, 0.5, 0.25, 7.0, 1.5, 2.0]
    assert all(type(p.value) is float for p in history)
    assert history[-1].timestamp == 1_700_000_000_000
