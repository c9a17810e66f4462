"""The contract every streaming anomaly detector must pass (River-style ``check_estimator``).

Each check takes a factory of fresh, untrained detectors — the class itself, or a function
(``lambda: MyDetector(seed=42)``) — and builds the detectors it needs with it::

    from opsloop.testing import check_detector
    check_detector(MyDetector)                 # every check; AssertionError names each failure

    @pytest.mark.parametrize("check", yield_detector_checks(), ids=lambda c: c.name)
    def test_my_detector(check): check(MyDetector)
"""

from __future__ import annotations

import inspect
import math
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from opsloop.aiops.detectors.base import Detector
from opsloop.testing._core import Check, check, run_checks, slow_check

__all__ = ["DetectorFactory", "check_detector", "yield_detector_checks"]

DetectorFactory = Callable[[], Detector]
"""Builds a fresh, untrained detector (with fixed parameters and seed)."""

FloatArray = npt.NDArray[np.float64]

_POINTS_PER_DAY = 288


def _stamps(n: int) -> list[datetime]:
    start = datetime(2024, 1, 1)
    return [start + timedelta(minutes=5 * i) for i in range(n)]


def _daily(n: int, seed: int, noise: float = 1.0) -> FloatArray:
    """A 5-minute series: a daily sine profile plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / _POINTS_PER_DAY
    return 50 + 20 * np.sin(phase) + noise * rng.standard_normal(n)


def _stream(n: int = 4000, seed: int = 1) -> tuple[FloatArray, list[datetime]]:
    """A daily series with a spike, a level shift and a flat stretch."""
    values = _daily(n, seed)
    values[n // 2] += 500.0
    values[3 * n // 4 :] += 25.0
    values[n // 3 : n // 3 + 50] = values[n // 3]
    return values, _stamps(n)


def _run(detector: Detector, values: FloatArray, stamps: list[datetime] | None) -> FloatArray:
    ts: list[datetime | None] = list(stamps) if stamps is not None else [None] * len(values)
    return np.array(
        [detector.score_learn_one(float(x), t) for x, t in zip(values, ts, strict=True)]
    )


def _fresh(make: DetectorFactory) -> Detector:
    detector = make()
    assert isinstance(detector, Detector), f"the factory returned {detector!r}, not a Detector"
    return detector


@check
def check_scores_lie_in_unit_interval(make: DetectorFactory) -> None:
    """Scores are finite, in [0, 1], and high on an injected spike and level shift."""
    values, stamps = _stream()
    scores = _run(_fresh(make), values, stamps)
    assert np.all(np.isfinite(scores)), "a score is not finite"
    assert scores.min() >= 0.0, f"a score is below 0: {scores.min()}"
    assert scores.max() <= 1.0, f"a score is above 1: {scores.max()}"
    # The injected spike and shift are seen by every detector.
    assert scores.max() > 0.5, f"no score above 0.5 on a spike of +500 (max {scores.max()})"


@check
def check_same_parameters_give_the_same_scores(make: DetectorFactory) -> None:
    """Two detectors built alike score a series alike."""
    values, stamps = _stream(seed=3)
    assert np.array_equal(_run(_fresh(make), values, stamps), _run(_fresh(make), values, stamps))


@check
def check_clone_is_fresh_with_the_same_parameters(make: DetectorFactory) -> None:
    """``clone`` of a trained detector is untrained, of the same type and parameters."""
    values, stamps = _stream(seed=4)
    trained = _fresh(make)
    _run(trained, values[:1500], stamps[:1500])
    clone = trained.clone()
    assert type(clone) is type(trained)
    assert clone.get_params() == trained.get_params()
    assert np.array_equal(_run(clone, values, stamps), _run(_fresh(make), values, stamps)), (
        "the clone scores differently from a fresh detector: it kept state"
    )


@check
def check_parameters_are_stored_under_their_own_names(make: DetectorFactory) -> None:
    """Constructor parameters are attributes of the same names; ``clone`` can change one."""
    detector = _fresh(make)
    cls = type(detector)
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert list(detector.get_params()) == names, (
        f"get_params() gives {list(detector.get_params())}, the constructor takes {names}"
    )
    for param in names:
        assert getattr(detector, param) == detector.get_params()[param], param
    if not names:
        return
    # Changing one parameter through clone keeps the others.
    first = names[-1]
    value = detector.get_params()[first]
    changed = detector.clone(**{first: value * 2 if isinstance(value, int | float) else value})
    assert {k: v for k, v in changed.get_params().items() if k != first} == {
        k: v for k, v in detector.get_params().items() if k != first
    }
    assert repr(detector).startswith(f"{cls.__name__}(")


@check
def check_no_look_ahead(make: DetectorFactory) -> None:
    """A point's score depends only on the points before it."""
    values, stamps = _stream(seed=5)
    full = _run(_fresh(make), values, stamps)
    for cut in (700, 2100, 3500):
        prefix = _run(_fresh(make), values[:cut], stamps[:cut])
        assert np.array_equal(prefix, full[:cut]), f"scores of the first {cut} points differ"


@check
def check_score_one_does_not_change_the_detector(make: DetectorFactory) -> None:
    """``score_one`` leaves no trace: only ``learn_one`` changes the detector."""
    values, stamps = _stream(seed=6)
    plain = _run(_fresh(make), values, stamps)
    detector = _fresh(make)
    poked = []
    for x, t in zip(values, stamps, strict=True):
        # Scoring other values (and the same one twice) must leave no trace.
        detector.score_one(x * 3.0 + 7.0, t)
        first = detector.score_one(float(x), t)
        assert detector.score_one(float(x), t) == first, "scoring twice gives two scores"
        detector.learn_one(float(x), t)
        poked.append(first)
    assert np.array_equal(np.array(poked), plain)


@check
def check_nan_and_infinite_values_score_zero_and_are_not_learnt(make: DetectorFactory) -> None:
    """NaN and infinities score 0 and do not change the detector."""
    values, stamps = _stream(2000, seed=7)
    clean = _run(_fresh(make), values, stamps)
    detector = _fresh(make)
    mixed = []
    for i, (x, t) in enumerate(zip(values, stamps, strict=True)):
        if i % 97 == 0:
            for bad in (math.nan, math.inf, -math.inf):
                score = detector.score_learn_one(bad, t)
                assert score == 0.0, f"{bad} scores {score}"
        mixed.append(detector.score_learn_one(float(x), t))
    assert np.array_equal(np.array(mixed), clean), "NaN or infinite values were learnt"


@check
def check_constant_series_is_quiet_and_a_step_after_it_is_not(make: DetectorFactory) -> None:
    """A constant series scores 0 throughout; a step after it scores above 0.5."""
    n = 1500
    values = np.full(n, 42.0)
    values[-1] = 60.0
    scores = _run(_fresh(make), values, _stamps(n))
    assert np.all(scores[:-1] == 0.0), f"a constant series scores up to {scores[:-1].max()}"
    assert scores[-1] > 0.5, f"a step from 42 to 60 scores {scores[-1]}"


@check
def check_works_without_timestamps(make: DetectorFactory) -> None:
    """Without timestamps, scores stay in [0, 1] and anomalies are still seen."""
    values, _ = _stream(3000, seed=8)
    scores = _run(_fresh(make), values, None)
    assert np.all((scores >= 0.0) & (scores <= 1.0)), "a score is outside [0, 1]"
    assert scores.max() > 0.5, f"no score above 0.5 (max {scores.max()})"


@slow_check
def check_state_is_bounded_on_a_long_stream(make: DetectorFactory) -> None:
    """The detector's state stops growing on a long stream (200,000 points)."""
    n = 200_000
    values = _daily(n, seed=9, noise=2.0)
    rng = np.random.default_rng(9)
    values[rng.integers(0, n, 200)] += 40.0  # occasional spikes
    stamps = _stamps(n)
    detector = _fresh(make)
    sizes = {}
    for i, (x, t) in enumerate(zip(values, stamps, strict=True)):
        detector.score_learn_one(float(x), t)
        if i + 1 in (100_000, 150_000, 200_000):
            sizes[i + 1] = len(pickle.dumps(detector))
    # Checkpoints from 100k on: every window is full long before, and stored positions have
    # the same integer width, so the pickled size measures the state itself.
    assert sizes[200_000] <= 1.1 * sizes[100_000], f"pickled sizes grow: {sizes}"
    assert sizes[150_000] <= 1.1 * sizes[100_000], f"pickled sizes grow: {sizes}"


_CHECKS: tuple[Check[DetectorFactory], ...] = (
    check_scores_lie_in_unit_interval,
    check_same_parameters_give_the_same_scores,
    check_clone_is_fresh_with_the_same_parameters,
    check_parameters_are_stored_under_their_own_names,
    check_no_look_ahead,
    check_score_one_does_not_change_the_detector,
    check_nan_and_infinite_values_score_zero_and_are_not_learnt,
    check_constant_series_is_quiet_and_a_step_after_it_is_not,
    check_works_without_timestamps,
    check_state_is_bounded_on_a_long_stream,
)


def yield_detector_checks(*, slow: bool = True) -> Iterator[Check[DetectorFactory]]:
    """Every check of the detector contract; ``slow=False`` leaves out the slow ones."""
    for one in _CHECKS:
        if slow or not one.slow:
            yield one


def check_detector(make: DetectorFactory, *, slow: bool = True) -> None:
    """Run the whole detector contract on the detectors ``make()`` builds.

    Args:
        make: Builds a fresh, untrained detector (a Detector subclass, or a function).
        slow: Include the slow check (a 200,000-point stream).

    Raises:
        AssertionError: A check failed; the message names every failing check.
    """
    run_checks(yield_detector_checks(slow=slow), lambda: make, "detector")
