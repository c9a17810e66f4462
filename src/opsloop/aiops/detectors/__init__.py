"""Streaming anomaly detectors with one small contract (``learn_one`` / ``score_one``)."""

from opsloop.aiops.detectors.artime import ARTimeDetector
from opsloop.aiops.detectors.base import Detector, to_seconds
from opsloop.aiops.detectors.cad import CADDetector
from opsloop.aiops.detectors.contextual import ContextDetector
from opsloop.aiops.detectors.ensemble import EnsembleDetector
from opsloop.aiops.detectors.fused import FusedDetector
from opsloop.aiops.detectors.likelihood import LikelihoodDetector
from opsloop.aiops.detectors.registry import (
    DEFAULT_DETECTOR,
    DETECTORS,
    default_detector,
    get_detector,
)
from opsloop.aiops.detectors.robust import EWMADetector, MADDetector
from opsloop.aiops.detectors.seasonal import SeasonalDetector

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "ARTimeDetector",
    "CADDetector",
    "ContextDetector",
    "Detector",
    "EWMADetector",
    "EnsembleDetector",
    "FusedDetector",
    "LikelihoodDetector",
    "MADDetector",
    "SeasonalDetector",
    "default_detector",
    "get_detector",
    "to_seconds",
]
