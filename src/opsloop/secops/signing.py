"""Sign a model folder and verify it, in the OpenSSF model-signing format.

A signature is a Sigstore bundle (JSON) written by the ``model-signing`` package with an
elliptic-curve key: a DSSE envelope over an in-toto statement that lists the SHA-256 of every
file in the folder. The same bundle verifies with the OpenSSF command line::

    model_signing verify key --public_key key.pub --signature model.sig model/

:func:`verify_folder` accepts a list of trusted public keys, picks the one the bundle names
(its key hint is the key id of :mod:`opsloop.secops.keys`) and says which check failed: a
signature by an unknown key, a bundle that does not verify, or files that changed, were added
or were removed.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import SignatureError
from opsloop.secops.keys import KeyRing, PublicKey, SigningKey, load_public_key

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SIGNATURE_FORMAT",
    "SignatureError",
    "bundle_key_id",
    "sign_folder",
    "trusted_keys",
    "verify_folder",
]

SIGNATURE_FORMAT = "openssf-model-signing"
"""The ``format`` recorded with a signature: an OpenSSF model-signing Sigstore bundle."""


def _hashing_config() -> Any:
    from model_signing import hashing  # noqa: PLC0415 (slow to import: only when used)

    # Every file counts, ``.git*`` ones included: nothing in a model folder is exempt.
    return hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)  # type: ignore[no-untyped-call]


def sign_folder(folder: Path, key: SigningKey) -> bytes:
    """Sign every file under ``folder`` with ``key``; return the bundle (JSON bytes).

    Raises:
        SignatureError: The folder does not exist or cannot be signed.
    """
    from model_signing import signing  # noqa: PLC0415 (slow to import: only when used)

    folder = Path(folder)
    if not folder.is_dir():
        raise SignatureError(f"cannot sign {folder}: not a folder")
    with tempfile.TemporaryDirectory(prefix="opsloop-sign-") as tmp:
        out = Path(tmp) / "model.sig"
        try:
            (
                signing.Config()  # type: ignore[no-untyped-call]
                .set_hashing_config(_hashing_config())
                .use_elliptic_key_signer(private_key=key.private_key_path)
                .sign(folder, out)
            )
        except (OSError, ValueError) as exc:
            raise SignatureError(f"cannot sign {folder}: {exc}") from exc
        return out.read_bytes()


def bundle_key_id(bundle: bytes) -> str | None:
    """The id of the key a bundle says it was signed with (its public-key hint), if any.

    Raises:
        SignatureError: The bundle is not a JSON Sigstore bundle.
    """
    try:
        data = json.loads(bundle)
        hint = data["verificationMaterial"]["publicKey"]["hint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"not a model-signing signature bundle ({exc})") from exc
    return hint if isinstance(hint, str) and hint else None


def verify_folder(
    folder: Path, bundle: bytes, trusted: Sequence[PublicKey], *, what: str | None = None
) -> PublicKey:
    """Check that ``bundle`` signs exactly the files under ``folder``, by a trusted key.

    Args:
        folder: The model folder.
        bundle: The signature bundle (JSON bytes) from :func:`sign_folder`.
        trusted: Public keys to accept.
        what: Names the model in error messages (default: the folder).

    Returns:
        The key that signed it.

    Raises:
        SignatureError: The bundle is unreadable, names a key not in ``trusted``, does not
            verify with that key, or lists files other than the folder's (each changed,
            added or removed file named).
    """
    from model_signing import verifying  # noqa: PLC0415 (slow to import: only when used)

    label = what or str(folder)
    try:
        hint = bundle_key_id(bundle)
    except SignatureError as exc:
        raise SignatureError(f"{label}: signature is unreadable: {exc.message}") from exc
    candidates = [k for k in trusted if k.key_id == hint] if hint else list(trusted)
    if not candidates:
        known = ", ".join(k.short_id for k in trusted) or "none"
        raise SignatureError(
            f"{label}: signed by an unknown key {hint[:16] if hint else '?'} "
            f"(trusted keys: {known})",
            hint="if you trust it, export it with 'opsloop keys export-public' where it was "
            "made and list it in security.trusted_keys of opsloop.yaml",
        )
    failure = ""
    with tempfile.TemporaryDirectory(prefix="opsloop-verify-") as tmp:
        sig = Path(tmp) / "model.sig"
        sig.write_bytes(bundle)
        for i, key in enumerate(candidates):
            pub = Path(tmp) / f"key{i}.pem"
            pub.write_bytes(key.pem)
            try:
                (
                    verifying.Config()  # type: ignore[no-untyped-call]
                    .set_hashing_config(_hashing_config())
                    .use_elliptic_key_verifier(public_key=pub)
                    .verify(folder, sig)
                )
            except ValueError as exc:
                text = str(exc)
                if text.startswith("Signature mismatch:"):
                    raise SignatureError(
                        f"{label}: files do not match the signature: {_mismatch(text)}",
                        hint="the files were changed after signing; do not load them",
                    ) from exc
                failure = text
            except Exception as exc:  # invalid signature, malformed envelope
                failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                return key
    raise SignatureError(f"{label}: signature does not verify ({failure or 'bad signature'})")


def _mismatch(text: str) -> str:
    """``model-signing``'s manifest diff as ``changed: a; added: b; removed: c``."""
    rest = text.split(":", 1)[1].strip()
    try:
        items = ast.literal_eval(rest)
    except (ValueError, SyntaxError):
        return rest
    if not isinstance(items, list):
        return rest
    changed: list[str] = []
    out: list[str] = []
    for item in map(str, items):
        if m := re.match(r"Hash mismatch for '(.*?)':", item):
            changed.append(m.group(1))
        elif m := re.match(r"Extra files found in model '.*?': (.*)", item):
            out.append(f"added: {m.group(1)}")
        elif m := re.match(r"Missing files in model '.*?': (.*)", item):
            out.append(f"removed: {m.group(1)}")
        else:
            out.append(item)
    if changed:
        out.insert(0, f"changed: {', '.join(changed)}")
    return "; ".join(out)


def trusted_keys(
    project: str,
    spec_keys: Sequence[str] = (),
    *,
    base: Path | None = None,
    root: Path | None = None,
) -> list[PublicKey]:
    """The public keys a project trusts: its own (current and retired; none are made here,
    so verifying on a machine without the project's keys creates nothing) and ``spec_keys``
    (``security.trusted_keys`` of ``opsloop.yaml``: PEM text or paths relative to ``base``).

    Raises:
        SecurityError: A listed key cannot be read.
    """
    keys = KeyRing(project, root=root).public_keys()
    seen = {k.key_id for k in keys}
    for i, value in enumerate(spec_keys):
        key = load_public_key(value, base=base, source=f"opsloop.yaml security.trusted_keys[{i}]")
        if key.key_id not in seen:
            seen.add(key.key_id)
            keys.append(key)
    return keys
