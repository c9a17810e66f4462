"""Monitoring: reference profiles, drift of live data against them, and drift reports.

Build a :class:`ReferenceProfile` once, when a model is registered; compare each window of
live data with it using :func:`compute_drift`; write :func:`write_drift_report` for people.
"""

from opsloop.monitor.drift import (
    Distribution,
    DriftResult,
    DriftThresholds,
    FeatureDrift,
    compute_drift,
)
from opsloop.monitor.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_reference_profile,
)
from opsloop.monitor.report import write_drift_report

__all__ = [
    "CategoricalProfile",
    "Distribution",
    "DriftResult",
    "DriftThresholds",
    "FeatureDrift",
    "NumericProfile",
    "ReferenceProfile",
    "build_reference_profile",
    "compute_drift",
    "write_drift_report",
]
