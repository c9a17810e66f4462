"""DevSecOps building blocks: what the registry, the server and the reconciler use to decide
whether a model may run, and the standard documents that describe it.

The package sits below the registry (the registry calls it on registration and on load) and
works on files, digests and plain records, never on the registry itself.
"""

from opsloop.secops.bom import (
    DatasetRecord,
    PythonEnvironment,
    PythonPackage,
    build_ml_bom,
    ml_bom_json,
    validate_ml_bom,
)
from opsloop.secops.iac import IacFinding, IacScanResult, install_checkov, run_checkov

__all__ = [
    "DatasetRecord",
    "IacFinding",
    "IacScanResult",
    "PythonEnvironment",
    "PythonPackage",
    "build_ml_bom",
    "install_checkov",
    "ml_bom_json",
    "run_checkov",
    "validate_ml_bom",
]
