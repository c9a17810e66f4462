"""Detectors by name."""

from __future__ import annotations

import inspect
from typing import Any

from opsloop.aiops.detectors.base import Detector
from opsloop.aiops.detectors.ensemble import EnsembleDetector
from opsloop.aiops.detectors.robust import EWMADetector, MADDetector
from opsloop.aiops.detectors.seasonal import SeasonalDetector
from opsloop.errors import AIOpsError

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "default_detector", "get_detector"]

DETECTORS: dict[str, type[Detector]] = {
    "mad": MADDetector,
    "ewma": EWMADetector,
    "seasonal": SeasonalDetector,
    "ensemble": EnsembleDetector,
}
"""Every built-in detector class, by registry name."""

DEFAULT_DETECTOR = "ensemble"
"""Name of the detector :func:`default_detector` returns."""


def get_detector(name: str, **params: Any) -> Detector:
    """Create a detector by registry name.

    Args:
        name: A key of :data:`DETECTORS`.
        **params: Constructor parameters.

    Returns:
        A fresh detector.

    Raises:
        AIOpsError: The name is unknown, or a parameter is not one the detector takes.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise AIOpsError(f"unknown detector {name!r}; known detectors: {known}") from None
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise AIOpsError(
            f"detector {name!r} has no parameter {unknown[0]!r}; parameters: {', '.join(accepted)}"
        )
    return cls(**params)


def default_detector() -> Detector:
    """The detector opsloop runs on every metric series unless told otherwise."""
    return get_detector(DEFAULT_DETECTOR)
