"""Monitoring: drift of live data against reference profiles, quality on the labels that come
back, service health, and drift reports.

A :class:`ReferenceProfile` (:mod:`opsloop.data.reference`) is built once, when a model is
registered; each window of live data is compared with it by :func:`compute_drift`;
:func:`write_drift_report` is for people.
"""

from opsloop.data.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_reference_profile,
)
from opsloop.monitor.drift import (
    Distribution,
    DriftResult,
    DriftThresholds,
    FeatureDrift,
    compute_drift,
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
