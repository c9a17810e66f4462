"""Detectors by name.

Another distribution adds one with an entry point in the group ``opsloop.detectors`` naming
its :class:`~opsloop.aiops.detectors.base.Detector` subclass; :func:`opsloop.testing.check_detector`
runs the contract every detector must pass.
"""

from __future__ import annotations

import inspect
from typing import Any

from opsloop.aiops.detectors.artime import ARTimeDetector
from opsloop.aiops.detectors.base import Detector
from opsloop.aiops.detectors.cad import CADDetector
from opsloop.aiops.detectors.contextual import ContextDetector
from opsloop.aiops.detectors.ensemble import EnsembleDetector
from opsloop.aiops.detectors.fused import FusedDetector
from opsloop.aiops.detectors.robust import EWMADetector, MADDetector
from opsloop.aiops.detectors.seasonal import SeasonalDetector
from opsloop.errors import AIOpsError
from opsloop.plugins import Registry

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "default_detector", "get_detector"]


def _detector_class(name: str, obj: Any) -> type[Detector]:
    if not (isinstance(obj, type) and issubclass(obj, Detector)):
        raise TypeError(f"{obj!r} is not a Detector subclass")
    return obj


DETECTORS: Registry[type[Detector]] = Registry(
    "detector", "opsloop.detectors", error=AIOpsError, check=_detector_class
)
"""Every detector class, by registry name (built-in first, then those of entry points)."""

DETECTORS.register("mad", MADDetector)
DETECTORS.register("ewma", EWMADetector)
DETECTORS.register("seasonal", SeasonalDetector)
DETECTORS.register("ensemble", EnsembleDetector)
DETECTORS.register("context", ContextDetector)
DETECTORS.register("cad", CADDetector)
DETECTORS.register("artime", ARTimeDetector)
DETECTORS.register("fused", FusedDetector)

DEFAULT_DETECTOR = "fused"
"""Name of the detector :func:`default_detector` returns."""


def get_detector(name: str, **params: Any) -> Detector:
    """Create a detector by registry name.

    Args:
        name: A name in :data:`DETECTORS`.
        **params: Constructor parameters.

    Returns:
        A fresh detector.

    Raises:
        AIOpsError: The name is unknown, or a parameter is not one the detector takes.
        PluginError: The detector's plugin cannot be imported.
    """
    cls = DETECTORS.get(name)
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
