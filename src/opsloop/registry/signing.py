"""Model versions are signed when registered and verified before they are loaded.

The signature bundle (OpenSSF model-signing, see :mod:`opsloop.secops.signing`) is a blob of
the artifact store beside the version's files; the version's ``details["signature"]``
records it::

    {"format": "openssf-model-signing", "bundle_digest": "sha256:...",
     "key_id": "<sha256 of the signing public key PEM>"}

Signing uses the current project's key (made on first use, see :mod:`opsloop.secops.keys`);
verification accepts the project's keys and ``security.trusted_keys`` of its
``opsloop.yaml``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.artifacts.remote import RemoteArtifactStore
from opsloop.context import current_project
from opsloop.errors import DigestMismatchError, NotFoundError
from opsloop.registry.admission import admission_policy
from opsloop.secops.keys import KeyRing, PublicKey
from opsloop.secops.scan import scan_path
from opsloop.secops.signing import SIGNATURE_FORMAT, SignatureError, sign_folder, verify_folder
from opsloop.secops.signing import trusted_keys as secops_trusted_keys

if TYPE_CHECKING:
    from opsloop.artifacts import ArtifactStore
    from opsloop.context import Project
    from opsloop.store import ModelVersionInfo

__all__ = [
    "attest_stored_version",
    "project_keyring",
    "project_trusted_keys",
    "sign_version",
    "signature_bundle",
    "verify_version",
]


def project_keyring() -> KeyRing:
    """The key ring of the current project."""
    return KeyRing(current_project().name)


def project_trusted_keys(project: Project | None = None) -> list[PublicKey]:
    """A project's keys (default: the current one's) and the ``security.trusted_keys`` of
    its ``opsloop.yaml``."""
    if project is None:
        project = current_project()
    spec_keys = list(project.spec.security.trusted_keys) if project.spec is not None else []
    if project.remote:
        # The server signs what it registers (it scanned those bytes itself): a client in
        # remote mode trusts the keys the server publishes, beside its own list.
        remote = project.artifacts
        if isinstance(remote, RemoteArtifactStore):
            spec_keys += remote.server_keys()
    return secops_trusted_keys(project.name, spec_keys, base=project.dir)


def sign_version(
    folder: Path, artifacts: ArtifactStore, *, keyring: KeyRing | None = None
) -> dict[str, Any]:
    """Sign ``folder`` with the project's key (``keyring``, default the current project's),
    store the bundle; return the details record.

    Against an opsloop server (remote mode) nothing is signed here and the record is empty:
    the server scans and signs what it registers, with its project's key.
    """
    if isinstance(artifacts, RemoteArtifactStore):
        return {}
    key = (keyring or project_keyring()).signing_key()
    bundle = sign_folder(folder, key)
    return {
        "format": SIGNATURE_FORMAT,
        "bundle_digest": artifacts.put_bytes(bundle),
        "key_id": key.public.key_id,
    }


def signature_bundle(version: ModelVersionInfo, artifacts: ArtifactStore) -> bytes:
    """The signature bundle of a registered version.

    Raises:
        SignatureError: The version has no signature, or its bundle is gone.
    """
    record = version.details.get("signature")
    digest = record.get("bundle_digest") if isinstance(record, dict) else None
    if not isinstance(digest, str) or not digest:
        raise SignatureError(
            f"model '{version.model_name}' version {version.version}: missing signature "
            "(the version was registered unsigned)",
            hint="register the model again to sign it",
        )
    try:
        return artifacts.get_bytes(digest)
    except NotFoundError as exc:
        raise SignatureError(
            f"model '{version.model_name}' version {version.version}: missing signature "
            f"(bundle {digest} is not in the artifact store)"
        ) from exc
    except DigestMismatchError as exc:
        raise SignatureError(
            f"model '{version.model_name}' version {version.version}: signature bundle "
            f"{digest} is corrupted in the artifact store"
        ) from exc


def verify_version(
    version: ModelVersionInfo,
    folder: Path,
    artifacts: ArtifactStore,
    trusted: list[PublicKey] | None = None,
) -> PublicKey:
    """Check ``folder`` (the version's files) against the version's signature.

    Returns:
        The trusted key that signed it.

    Raises:
        SignatureError: Missing signature, an unknown key, or files that differ, the message
            naming the model, the version and the reason.
    """
    bundle = signature_bundle(version, artifacts)
    return verify_folder(
        folder,
        bundle,
        project_trusted_keys() if trusted is None else trusted,
        what=f"model '{version.model_name}' version {version.version}",
    )


def attest_stored_version(project: Project, digest: str) -> dict[str, Any]:
    """Scan the stored files of a version (the folder manifest ``digest``) and sign them with
    the project's key: the ``scan`` and ``signature`` a server records for a version it did not
    package itself (from MLflow's client, or a client in remote mode), whatever was claimed, so
    that the admission policy judges it like any other.
    """
    trusted = list(admission_policy(project).trusted_types)
    with tempfile.TemporaryDirectory(prefix="opsloop-attest-") as tmp:
        folder = project.artifacts.get_dir(digest, Path(tmp) / "model")
        scan = scan_path(folder, trusted_types=trusted).summary()
        signature = sign_version(folder, project.artifacts, keyring=KeyRing(project.name))
    return {"scan": scan, "signature": signature}
