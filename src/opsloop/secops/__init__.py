"""DevSecOps building blocks: what the registry, the server and the reconciler use to decide
whether a model may run, and the standard documents that describe it.

The package sits below the registry (the registry calls it on registration and on load) and
works on files, digests and plain records, never on the registry itself.
"""

from opsloop.secops.iac import IacFinding, IacScanResult, install_checkov, run_checkov

__all__ = ["IacFinding", "IacScanResult", "install_checkov", "run_checkov"]
