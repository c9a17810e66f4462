"""The detector contract (opsloop.testing.detectors) on every registered detector: one test
per detector and check."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from opsloop.aiops.detectors import DETECTORS, Detector, get_detector
from opsloop.testing import Check, yield_detector_checks

NAMES = sorted(DETECTORS)


def factory(name: str) -> Callable[[], Detector]:
    """Fresh detectors of one name, with a fixed seed when it takes one."""

    def make() -> Detector:
        params = {}
        if "seed" in inspect.signature(DETECTORS[name].__init__).parameters:
            params["seed"] = 42
        return get_detector(name, **params)

    return make


# A slow check streams 200,000 points: the slowest detector (cad) needs minutes for it on a
# busy machine, beyond the default time limit of a test.
_SLOW = [pytest.mark.slow, pytest.mark.timeout(1200)]

CASES = [
    pytest.param(name, check, id=f"{name}-{check.name}", marks=_SLOW if check.slow else [])
    for name in NAMES
    for check in yield_detector_checks()
]


@pytest.mark.parametrize(("name", "check"), CASES)
def test_detector_contract(name: str, check: Check[Callable[[], Detector]]) -> None:
    check(factory(name))


def test_every_check_runs_on_every_detector() -> None:
    assert len(CASES) == len(NAMES) * 10
    assert NAMES == [
        "artime",
        "cad",
        "context",
        "ensemble",
        "ewma",
        "fused",
        "likelihood",
        "mad",
        "seasonal",
    ]
