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
from opsloop.secops.keys import KEY_ENV, KeyRing, PublicKey, SigningKey, key_id, load_public_key
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
    "DatasetRecord",
    "IacFinding",
    "IacScanResult",
    "KeyRing",
    "PublicKey",
    "PythonEnvironment",
    "PythonPackage",
    "SignatureError",
    "SigningKey",
    "build_ml_bom",
    "bundle_key_id",
    "install_checkov",
    "key_id",
    "load_public_key",
    "ml_bom_json",
    "run_checkov",
    "sign_folder",
    "trusted_keys",
    "validate_ml_bom",
    "verify_folder",
]
