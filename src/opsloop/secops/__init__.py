"""DevSecOps building blocks: what the registry, the server and the reconciler use to decide
whether a model may run, and the standard documents that describe it.

The package sits below the registry (the registry calls it on registration and on load) and
works on files, digests and plain records, never on the registry itself.
"""

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
    "KeyRing",
    "PublicKey",
    "SignatureError",
    "SigningKey",
    "bundle_key_id",
    "key_id",
    "load_public_key",
    "sign_folder",
    "trusted_keys",
    "verify_folder",
]
