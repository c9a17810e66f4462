"""DevSecOps building blocks: what the registry, the server and the reconciler use to decide
whether a model may run, and the standard documents that describe it.

The package sits below the registry (the registry calls it on registration and on load) and
works on files, digests and plain records, never on the registry itself.
"""

from opsloop.secops.sarif import (
    SarifLog,
    SarifResult,
    SarifRule,
    SarifRun,
    scan_report_run,
)
from opsloop.secops.scan import (
    Finding,
    ScanReport,
    Severity,
    scan_bytes,
    scan_path,
    scan_status,
    severity_at_least,
)

__all__ = [
    "Finding",
    "SarifLog",
    "SarifResult",
    "SarifRule",
    "SarifRun",
    "ScanReport",
    "Severity",
    "scan_bytes",
    "scan_path",
    "scan_report_run",
    "scan_status",
    "severity_at_least",
]
