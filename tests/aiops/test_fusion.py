"""The fusion detector: the ensemble and CAD-OSE, the more alarmed of the two wins."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from opsloop.aiops.detectors import FusionDetector, get_detector
from opsloop.aiops.detectors.state import dumps_state, loads_state
from opsloop.errors import AIOpsError

_PATTERN = [0.0, 2.0, 5.0, 7.0, 5.0, 2.0]


def _series() -> tuple[list[float], list[datetime]]:
    """A learnt pattern, three broken repeats of it inside the normal range, the pattern again."""
    values = _PATTERN * 300 + [0.0, 5.0, 2.0, 7.0, 2.0, 5.0] * 3 + _PATTERN * 20
    start = datetime(2026, 1, 1)
    return values, [start + timedelta(minutes=5 * i) for i in range(len(values))]


def _hinted(name: str, **params: float) -> object:
    d = get_detector(name, **params)
    d.hint(value_range=(0.0, 7.0), probation=150)
    return d


@pytest.mark.parametrize("weight", [0.6, 0.9, 1.5])
def test_the_fused_score_is_the_larger_of_the_two_the_second_weighted(weight: float) -> None:
    values, stamps = _series()
    ensemble = _hinted("ensemble").score_many(values, stamps)  # type: ignore[attr-defined]
    cad = _hinted("cad").score_many(values, stamps)  # type: ignore[attr-defined]
    fused = _hinted("fusion", context_weight=weight).score_many(values, stamps)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(fused, np.maximum(ensemble, np.minimum(1.0, weight * cad)))
    assert fused.max() <= 1.0
    # Streaming one point at a time gives the same scores as the whole series at once.
    one = _hinted("fusion", context_weight=weight)
    streamed = [one.score_learn_one(x, t) for x, t in zip(values, stamps, strict=True)]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.array(streamed), fused)


def test_a_broken_pattern_inside_the_range_alarms_and_the_pattern_itself_does_not() -> None:
    values, stamps = _series()
    fused = _hinted("fusion").score_many(values, stamps)  # type: ignore[attr-defined]
    assert fused[1500:1800].max() < 0.2  # the learnt pattern
    assert fused[1800:1818].max() > 0.9  # its break, never outside 0..7
    assert fused[1818:].max() < 0.2  # the pattern back


def test_hints_reach_both_detectors_and_a_checkpoint_resumes_exactly() -> None:
    values, stamps = _series()
    d = FusionDetector()
    d.hint(value_range=(0.0, 7.0), probation=150)
    assert d._context._lo == 0.0  # type: ignore[attr-defined]
    first = d.score_many(values[:900], stamps[:900])
    resumed = loads_state(dumps_state(d))
    rest = resumed.score_many(values[900:], stamps[900:])
    whole = _hinted("fusion").score_many(values, stamps)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.concatenate([first, rest]), whole)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"context_weight": 0.0}, "context_weight must be a positive number"),
        ({"context_weight": float("nan")}, "context_weight must be a positive number"),
        ({"base": "fusion"}, "cannot contain another one"),
        ({"context": "nope"}, "nope"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_them(
    params: dict[str, object], message: str
) -> None:
    with pytest.raises(AIOpsError, match=message):
        get_detector("fusion", **params)
