"""The check suite every registered detector must pass."""

from __future__ import annotations

import inspect
import math
import pickle
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from opsloop.aiops.detectors import DETECTORS, Detector, get_detector

from ._series import daily_series, five_minute_stamps

NAMES = sorted(DETECTORS)


def make(name: str, **params: Any) -> Detector:
    """A detector with a fixed seed when it takes one."""
    accepted = inspect.signature(DETECTORS[name].__init__).parameters
    if "seed" in accepted:
        params.setdefault("seed", 42)
    return get_detector(name, **params)


def stream(n: int = 4000, seed: int = 1) -> tuple[np.ndarray, list[datetime]]:
    """A daily series with a spike, a level shift and a flat stretch."""
    values = daily_series(n, seed=seed)
    values[n // 2] += 500.0
    values[3 * n // 4 :] += 25.0
    values[n // 3 : n // 3 + 50] = values[n // 3]
    return values, five_minute_stamps(n)


def run(detector: Detector, values: np.ndarray, stamps: list[datetime] | None) -> np.ndarray:
    ts: list[datetime | None] = list(stamps) if stamps is not None else [None] * len(values)
    return np.array(
        [detector.score_learn_one(float(x), t) for x, t in zip(values, ts, strict=True)]
    )


@pytest.mark.parametrize("name", NAMES)
def test_scores_lie_in_unit_interval(name: str) -> None:
    values, stamps = stream()
    scores = run(make(name), values, stamps)
    assert np.all(np.isfinite(scores))
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    # The injected spike and shift are seen by every detector.
    assert scores.max() > 0.5


@pytest.mark.parametrize("name", NAMES)
def test_same_parameters_give_the_same_scores(name: str) -> None:
    values, stamps = stream(seed=3)
    assert np.array_equal(run(make(name), values, stamps), run(make(name), values, stamps))


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_fresh_with_the_same_parameters(name: str) -> None:
    values, stamps = stream(seed=4)
    trained = make(name)
    run(trained, values[:1500], stamps[:1500])
    clone = trained.clone()
    assert type(clone) is type(trained)
    assert clone.get_params() == trained.get_params()
    assert np.array_equal(run(clone, values, stamps), run(make(name), values, stamps))


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_stored_under_their_own_names(name: str) -> None:
    cls = DETECTORS[name]
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    detector = make(name)
    assert list(detector.get_params()) == names
    for param in names:
        assert getattr(detector, param) == detector.get_params()[param]
    # Changing one parameter through clone keeps the others.
    first = names[-1]
    value = detector.get_params()[first]
    changed = detector.clone(**{first: value * 2 if isinstance(value, int | float) else value})
    assert {k: v for k, v in changed.get_params().items() if k != first} == {
        k: v for k, v in detector.get_params().items() if k != first
    }
    assert repr(detector).startswith(f"{cls.__name__}(")


@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(name: str) -> None:
    values, stamps = stream(seed=5)
    full = run(make(name), values, stamps)
    for cut in (700, 2100, 3500):
        prefix = run(make(name), values[:cut], stamps[:cut])
        assert np.array_equal(prefix, full[:cut])


@pytest.mark.parametrize("name", NAMES)
def test_score_one_does_not_change_the_detector(name: str) -> None:
    values, stamps = stream(seed=6)
    plain = run(make(name), values, stamps)
    detector = make(name)
    poked = []
    for x, t in zip(values, stamps, strict=True):
        # Scoring other values (and the same one twice) must leave no trace.
        detector.score_one(x * 3.0 + 7.0, t)
        first = detector.score_one(float(x), t)
        assert detector.score_one(float(x), t) == first
        detector.learn_one(float(x), t)
        poked.append(first)
    assert np.array_equal(np.array(poked), plain)


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_infinite_values_score_zero_and_are_not_learnt(name: str) -> None:
    values, stamps = stream(2000, seed=7)
    clean = run(make(name), values, stamps)
    detector = make(name)
    mixed = []
    for i, (x, t) in enumerate(zip(values, stamps, strict=True)):
        if i % 97 == 0:
            for bad in (math.nan, math.inf, -math.inf):
                assert detector.score_learn_one(bad, t) == 0.0
        mixed.append(detector.score_learn_one(float(x), t))
    assert np.array_equal(np.array(mixed), clean)


@pytest.mark.parametrize("name", NAMES)
def test_constant_series_is_quiet_and_a_step_after_it_is_not(name: str) -> None:
    n = 1500
    values = np.full(n, 42.0)
    values[-1] = 60.0
    scores = run(make(name), values, five_minute_stamps(n))
    assert np.all(scores[:-1] == 0.0)
    assert scores[-1] > 0.5


@pytest.mark.parametrize("name", NAMES)
def test_works_without_timestamps(name: str) -> None:
    values, _ = stream(3000, seed=8)
    scores = run(make(name), values, None)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores.max() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_state_is_bounded_on_a_long_stream(name: str) -> None:
    n = 200_000
    values = daily_series(n, seed=9, noise=2.0)
    rng = np.random.default_rng(9)
    values[rng.integers(0, n, 200)] += 40.0  # occasional spikes
    stamps = five_minute_stamps(n)
    detector = make(name)
    sizes = {}
    for i, (x, t) in enumerate(zip(values, stamps, strict=True)):
        detector.score_learn_one(float(x), t)
        if i + 1 in (100_000, 150_000, 200_000):
            sizes[i + 1] = len(pickle.dumps(detector))
    # Checkpoints from 100k on: every window is full long before, and stored positions have
    # the same integer width, so the pickled size measures the state itself.
    assert sizes[200_000] <= 1.1 * sizes[100_000], sizes
    assert sizes[150_000] <= 1.1 * sizes[100_000], sizes
