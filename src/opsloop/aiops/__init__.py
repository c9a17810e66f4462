"""AIOps: streaming anomaly detectors for metric series and the NAB benchmark."""

from opsloop.aiops.detectors import (
    DETECTORS,
    Detector,
    EnsembleDetector,
    EWMADetector,
    MADDetector,
    SeasonalDetector,
    default_detector,
    get_detector,
)

__all__ = [
    "DETECTORS",
    "Detector",
    "EWMADetector",
    "EnsembleDetector",
    "MADDetector",
    "SeasonalDetector",
    "default_detector",
    "get_detector",
]
