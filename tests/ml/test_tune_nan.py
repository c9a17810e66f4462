"""A NaN score never wins the choice of the best trial or candidate."""

from __future__ import annotations

import math

import pytest

from opsloop.ml.tune import _best


@pytest.mark.parametrize(("higher", "expected"), [(True, 0.9), (False, 0.5)])
def test_a_nan_score_never_wins(higher: bool, expected: float) -> None:
    scores: list[float | None] = [math.nan, 0.5, None, math.nan, 0.9]
    assert _best(scores, lambda v: v, higher) == expected
    assert _best([math.nan, None], lambda v: v, higher) is None
