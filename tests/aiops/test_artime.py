"""The ARTime detector: its encoding, scores on a spike and a shift, hints, checkpoints."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from opsloop.aiops.detectors import ARTimeDetector, get_detector
from opsloop.aiops.detectors.artime import _haar_matrix
from opsloop.aiops.detectors.state import dumps_state, loads_state


def _series(n: int = 4000, seed: int = 2) -> npt.NDArray[np.float64]:
    """A daily profile (288 points a day) with noise, a spike at 2500, a shift from 3300."""
    rng = np.random.default_rng(seed)
    values = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    values[2500] += 60.0
    values[3300:] += 30.0
    return values


def _hinted(values: npt.NDArray[np.float64], **params: int) -> ARTimeDetector:
    d = ARTimeDetector(**params)
    d.hint(value_range=(float(values.min()), float(values.max())), probation=600)
    return d


def test_the_wavelet_is_the_orthonormal_haar_transform() -> None:
    h = _haar_matrix(8)
    np.testing.assert_allclose(h @ h.T, np.eye(8), atol=1e-12)
    coefs = h @ np.arange(1.0, 9.0)
    # Average first, then details coarse to fine, each the later half minus the earlier.
    np.testing.assert_allclose(coefs[:2], [36 / np.sqrt(8), 16 / np.sqrt(8)])
    np.testing.assert_allclose(coefs[2:4], [2.0, 2.0])
    np.testing.assert_allclose(coefs[4:], [1 / np.sqrt(2)] * 4)


def test_the_hints_set_the_downsampling_and_the_trend_window() -> None:
    d = _hinted(_series())
    assert d._step_len == 600 // (8 * 13) == 5
    assert d._trend == 120
    assert ARTimeDetector(window=4)._mask == 0  # fixed only once the range is known
    fresh = ARTimeDetector()
    fresh.hint(value_range=(0.0, 1.0))
    assert (fresh._step_len, fresh._trend) == (1, 150)  # no probation hint: warmup_points


def test_a_spike_and_a_level_shift_score_above_the_normal_stretch() -> None:
    values = _series()
    scores = _hinted(values).score_many(values)
    assert scores[:600].max() == 0.0, "nothing is reported in the probationary period"
    normal = scores[800:2490].max()
    assert scores[2500:2520].max() > max(0.5, normal)
    assert scores[3300:3340].max() > max(0.5, normal)
    # Scores are sparse: only points ending a block that fails to resonate score.
    assert np.count_nonzero(scores) < 0.02 * len(scores)


def test_the_same_series_gives_the_same_scores() -> None:
    values = _series(seed=4)
    np.testing.assert_array_equal(
        _hinted(values).score_many(values), _hinted(values).score_many(values)
    )


def test_without_a_range_hint_the_probation_fixes_the_range_and_is_replayed() -> None:
    values = _series()
    values[:600] = np.clip(values[:600], 30.0, 70.0)
    values[10], values[20] = values.min(), values.max()  # the probation spans the range
    hinted = _hinted(values)
    expected = hinted.score_many(values)
    d = ARTimeDetector()
    d.hint(probation=600)
    scores = d.score_many(values)
    np.testing.assert_array_equal(scores, expected)
    assert dumps_state(d) == dumps_state(hinted)


def test_without_any_hint_it_warms_up_then_judges_every_point() -> None:
    values = _series()
    d = ARTimeDetector()
    scores = d.score_many(values)
    assert d._step_len == 1
    assert scores[:150].max() == 0.0
    # Values beyond the warm-up's range are clipped to it: the spike and shift are still
    # seen, the spike above anything in the normal stretch.
    assert scores[2500:2520].max() > max(0.5, scores[800:2490].max())
    assert scores[3300:3340].max() > 0.3
    assert np.array_equal(scores, ARTimeDetector().score_many(values))


def test_the_categories_are_capped() -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 1.0, 3000)
    sizes = []
    for cap in (2000, 20):  # 2000: never reached here
        d = get_detector("artime", max_categories=cap)
        d.hint(value_range=(0.0, 1.0), probation=300)
        d.score_many(values)
        assert isinstance(d, ARTimeDetector) and d._state and d._state.weights is not None
        sizes.append(d._state.weights.shape[0])
    assert sizes[0] > 20 and sizes[1] == 20


def test_a_checkpoint_resumes_exactly_mid_block_and_before_the_batch() -> None:
    values = _series(seed=6)
    whole = _hinted(values).score_many(values)
    for cut in (100, 2002, 2003):  # in the probation, mid-block, at a block's end
        d = _hinted(values)
        first = d.score_many(values[:cut])
        resumed = loads_state(dumps_state(d))
        rest = resumed.score_many(values[cut:])
        np.testing.assert_array_equal(np.concatenate([first, rest]), whole)
