"""DevSecOps building blocks: what the registry, the server and the reconciler use to decide
whether a model may run, and the standard documents that describe it.

The package sits below the registry (the registry calls it on registration and on load) and
works on files, digests and plain records, never on the registry itself.
"""

from opsloop.secops.admission import AdmissionDecision, admit
from opsloop.secops.bom import (
    DatasetRecord,
    PythonEnvironment,
    PythonPackage,
    build_ml_bom,
    ml_bom_json,
    validate_ml_bom,
)
from opsloop.secops.iac import IacFinding, IacScanResult, install_checkov, run_checkov
from opsloop.secops.keys import KEY_ENV, KeyRing, PublicKey, SigningKey, key_id, load_public_key
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
from opsloop.secops.secrets import SecretFinding, SecretsReport, scan_secrets, secrets_run
from opsloop.secops.signing import (
    SIGNATURE_FORMAT,
    SignatureError,
    bundle_key_id,
    sign_folder,
    trusted_keys,
    verify_folder,
)

__all__ = [
    "KEY_ENV",
    "SIGNATURE_FORMAT",
    "AdmissionDecision",
    "DatasetRecord",
    "Finding",
    "IacFinding",
    "IacScanResult",
    "KeyRing",
    "PublicKey",
    "PythonEnvironment",
    "PythonPackage",
    "SarifLog",
    "SarifResult",
    "SarifRule",
    "SarifRun",
    "ScanReport",
    "SecretFinding",
    "SecretsReport",
    "Severity",
    "SignatureError",
    "SigningKey",
    "admit",
    "build_ml_bom",
    "bundle_key_id",
    "install_checkov",
    "key_id",
    "load_public_key",
    "ml_bom_json",
    "run_checkov",
    "scan_bytes",
    "scan_path",
    "scan_report_run",
    "scan_secrets",
    "scan_status",
    "secrets_run",
    "severity_at_least",
    "sign_folder",
    "trusted_keys",
    "validate_ml_bom",
    "verify_folder",
]
