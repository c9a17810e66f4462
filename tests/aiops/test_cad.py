"""The CAD-OSE detector: quantisation, hints, learning a pattern, rest period, checkpoints."""

from __future__ import annotations

import numpy as np

from opsloop.aiops.detectors import CADDetector, get_detector
from opsloop.aiops.detectors.state import dumps_state, loads_state


def _pattern(repeats: int) -> list[float]:
    return [0.0, 2.0, 5.0, 7.0, 5.0, 2.0] * repeats


def test_values_become_one_fact_per_bit_of_their_level() -> None:
    d = CADDetector()
    d.hint(value_range=(0.0, 7.0))
    assert d._facts(0.0) == (0, 2, 4)
    assert d._facts(5.0) == (1, 2, 5)  # level 5 = 0b101
    assert d._facts(7.0) == (1, 3, 5)
    # Beyond the range: more bits above, a fact of its own below.
    assert d._facts(15.0) == (1, 3, 5, 7)
    assert len(d._facts(-1.0)) == 1


def test_a_learnt_pattern_is_predicted_and_a_break_in_it_is_not() -> None:
    d = CADDetector(rest_points=1)
    d.hint(value_range=(0.0, 7.0))
    scores = d.score_many(_pattern(40))
    # Early on the pattern is new; once learnt every point is predicted.
    assert scores[1:12].max() > 0.0
    assert scores[-60:].max() == 0.0
    assert d.score_one(0.0) == 0.0  # the next value of the pattern (..., 5, 2, 0)
    assert d.score_one(7.0) > 0.4  # a value the learnt context does not predict


def test_a_high_raw_score_silences_the_rest_period() -> None:
    d = CADDetector()
    d.hint(value_range=(0.0, 7.0), probation=100)  # rest period = 100 / 5 points
    assert d._history.maxlen == 20
    assert CADDetector(rest_points=7)._history.maxlen == 7
    assert CADDetector()._history.maxlen == 30
    # The first raw score cannot be returned: the history starts at 1.
    assert d.score_many(_pattern(3))[:20].max() == 0.0


def test_without_a_range_hint_the_warm_up_fixes_the_range_and_is_replayed() -> None:
    values = _pattern(30)
    hinted = CADDetector(warmup_points=24)
    hinted.hint(value_range=(0.0, 7.0))
    expected = hinted.score_many(values)
    d = CADDetector(warmup_points=24)
    scores = d.score_many(values)
    assert scores[:24].max() == 0.0
    # After the warm-up (whose range is the whole range) it is the hinted detector.
    np.testing.assert_array_equal(scores[24:], expected[24:])
    assert dumps_state(d) == dumps_state(hinted)


def test_a_trained_detector_ignores_hints() -> None:
    d = CADDetector()
    d.hint(value_range=(0.0, 7.0))
    d.learn_one(3.0)
    d.hint(value_range=(0.0, 700.0), probation=10)
    assert d._facts(7.0) == (1, 3, 5)


def test_memory_is_capped_and_a_checkpoint_resumes_exactly() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 3000)
    d = get_detector("cad", max_contexts=300)
    d.hint(value_range=(-4.0, 4.0), probation=500)
    first = d.score_many(values[:2000])
    assert len(d._seen) == 300
    resumed = loads_state(dumps_state(d))
    rest = d.score_many(values[2000:])
    np.testing.assert_array_equal(resumed.score_many(values[2000:]), rest)
    assert first.max() <= 1.0 and rest.min() >= 0.0
