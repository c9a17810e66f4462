"""The project's signing key pair, kept outside the repository and the artifact store.

Each project has an elliptic-curve (NIST P-256) key pair under the user's configuration
folder, ``<user config dir>/opsloop/keys/<project>/`` (``~/.config/opsloop/keys/<project>/``
on Linux, ``$XDG_CONFIG_HOME`` honoured)::

    private.pem            the current private key (PKCS#8 PEM, mode 0600)
    public/<key id>.pem    every public key the project trusts: the current one and those
                           retired by a rotation, until they are removed

It is made on first use (signing a model) or by ``opsloop keys create``. In CI the
environment variable ``OPSLOOP_SIGNING_KEY`` names a private key PEM file instead; its public
key is trusted along with the folder's.

A key's id is the SHA-256 (hex) of its public key's PEM, the hint OpenSSF model-signing
writes into a signature bundle, so the id names the key a bundle was signed with.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from filelock import FileLock

from opsloop.errors import SecurityError

__all__ = [
    "KEY_ENV",
    "KeyRing",
    "PublicKey",
    "SigningKey",
    "key_id",
    "keys_dir",
    "load_public_key",
]

KEY_ENV = "OPSLOOP_SIGNING_KEY"
"""Environment variable naming a private key PEM file to sign with instead of the project's."""

_PRIVATE = "private.pem"
_PUBLIC = "public"


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key.

    Attributes:
        key_id: SHA-256 hex of the PEM (the model-signing bundle's key hint).
        pem: The PEM bytes (SubjectPublicKeyInfo).
        source: Where it comes from (``project``, ``retired``, ``env OPSLOOP_SIGNING_KEY``,
            ``opsloop.yaml security.trusted_keys[0]`` ...).
        path: The file it was read from, if any.
    """

    key_id: str
    pem: bytes
    source: str
    path: Path | None = None

    @property
    def short_id(self) -> str:
        """The first 16 hex digits of the id, as shown to people."""
        return self.key_id[:16]


@dataclass(frozen=True)
class SigningKey:
    """The private key to sign with (a file) and its public key."""

    private_key_path: Path
    public: PublicKey


def key_id(pem: bytes) -> str:
    """The id of a public key: SHA-256 hex of its PEM, as model-signing's bundle hint."""
    return hashlib.sha256(pem).hexdigest()


def keys_dir(project: str, root: Path | None = None) -> Path:
    """The folder of ``project``'s keys under ``root`` (default: the user's config folder)."""
    base = Path(root) if root is not None else Path(platformdirs.user_config_dir("opsloop"))
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", project).strip(".") or "_"
    return base / "keys" / safe


def pii_salt(project: str, root: Path | None = None) -> bytes:
    """The project's salt for hashing personal data in the prediction log (32 random bytes,
    made on first use), kept with its keys: outside the repository and the artifact store."""
    path = keys_dir(project, root) / "pii.salt"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(32))
        salt = path.read_bytes()
    if len(salt) < 16:
        raise SecurityError(
            f"PII salt {path} is shorter than 16 bytes: remove it to make a new one"
        )
    return salt


def load_public_key(value: str, *, base: Path | None = None, source: str = "") -> PublicKey:
    """A public key from PEM text or from the path of a PEM file (relative to ``base``).

    Raises:
        SecurityError: The file does not exist, or it holds no elliptic-curve public key.
    """
    path: Path | None = None
    if "-----BEGIN" in value:
        raw = value.strip().encode() + b"\n"
    else:
        path = Path(value).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SecurityError(f"{source or 'public key'}: cannot read {path}: {exc}") from exc
    pem = _public_pem(raw, source or str(path))
    return PublicKey(key_id(pem), pem, source, path)


def _public_pem(raw: bytes, what: str) -> bytes:
    """Normalised PEM of the EC public key in ``raw``, a public or a private key."""
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError:
        try:
            private = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"{what}: not a PEM public or private key ({exc})") from exc
        key = private.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SecurityError(f"{what}: not an elliptic-curve key ({type(key).__name__})")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class KeyRing:
    """The keys of one project: the signing key and the public keys it trusts.

    Args:
        project: The project's name (names its folder).
        root: Folder holding ``keys/``; default the user's config folder.
        env: Environment to read ``OPSLOOP_SIGNING_KEY`` from (default ``os.environ``).
    """

    def __init__(
        self, project: str, *, root: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.project = project
        self.dir = keys_dir(project, root)
        self._env = os.environ if env is None else env

    @property
    def env_key(self) -> Path | None:
        """The private key file named by ``OPSLOOP_SIGNING_KEY``, if set."""
        value = self._env.get(KEY_ENV, "").strip()
        return Path(value).expanduser() if value else None

    def signing_key(self, *, create: bool = True) -> SigningKey:
        """The key to sign with: ``OPSLOOP_SIGNING_KEY``'s, else the project's (made now if
        there is none and ``create``).

        Raises:
            SecurityError: The key file is missing or unreadable, or there is no key and
                ``create`` is false.
        """
        env_key = self.env_key
        if env_key is not None:
            return self._read_private(env_key, f"{KEY_ENV}={env_key}")
        private = self.dir / _PRIVATE
        if not private.is_file():
            if not create:
                raise SecurityError(
                    f"project '{self.project}' has no signing key in {self.dir}",
                    hint="create one with 'opsloop keys create'",
                )
            with self._lock():
                if not private.is_file():
                    self._write_new()
        return self._read_private(private, "project")

    def create(self) -> SigningKey:
        """Make the project's key pair.

        Raises:
            SecurityError: The project has a key already (use :meth:`rotate`).
        """
        with self._lock():
            if (self.dir / _PRIVATE).exists():
                raise SecurityError(
                    f"project '{self.project}' already has a signing key in {self.dir}",
                    hint="use 'opsloop keys rotate' to replace it",
                )
            self._write_new()
        return self.signing_key(create=False)

    def rotate(self) -> tuple[SigningKey, PublicKey | None]:
        """Replace the signing key by a new one; the old public key stays trusted (as
        retired) until :meth:`remove` d. Returns the new key and the retired one."""
        with self._lock():
            old: PublicKey | None = None
            private = self.dir / _PRIVATE
            if private.is_file():
                old = self._read_private(private, "project").public
                private.unlink()
            self._write_new()
        new = self.signing_key(create=False)
        return new, (None if old is None else PublicKey(old.key_id, old.pem, "retired", old.path))

    def remove(self, key: str) -> PublicKey:
        """Stop trusting a retired public key, given its id or a prefix of it.

        Raises:
            SecurityError: No such key, an ambiguous prefix, or the current signing key.
        """
        matches = [k for k in self.public_keys() if k.key_id.startswith(key.lower())]
        if not key or len(matches) != 1:
            raise SecurityError(
                f"key '{key}': "
                + ("no such key" if not matches else f"{len(matches)} keys match this prefix"),
                hint="'opsloop keys' lists the key ids",
            )
        found = matches[0]
        if found.source != "retired" or found.path is None:
            raise SecurityError(
                f"key {found.short_id} is the current signing key ({found.source}); "
                "rotate first, then remove the retired key"
            )
        found.path.unlink()
        return found

    def current(self) -> PublicKey | None:
        """The public key of the signing key, None when there is none yet."""
        try:
            return self.signing_key(create=False).public
        except SecurityError:
            if self.env_key is not None:
                raise
            return None

    def public_keys(self) -> list[PublicKey]:
        """Every public key the project trusts: current first, then retired ones."""
        current = self.current()
        keys: list[PublicKey] = [current] if current is not None else []
        folder = self.dir / _PUBLIC
        if folder.is_dir():
            for file in sorted(folder.glob("*.pem")):
                pub = load_public_key(str(file), source="retired")
                if current is None or pub.key_id != current.key_id:
                    keys.append(pub)
                elif current.path is None:
                    keys[0] = PublicKey(current.key_id, current.pem, current.source, file)
        return keys

    def export_public(self, out: Path) -> PublicKey:
        """Write the signing key's public key (PEM) to ``out``; make the key if needed."""
        public = self.signing_key().public
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(public.pem)
        return public

    # -- internals ----------------------------------------------------------------------------

    def _lock(self) -> FileLock:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(str(self.dir / ".lock"), timeout=30)

    def _write_new(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = _public_pem(pem, "new key")
        (self.dir / _PUBLIC).mkdir(parents=True, exist_ok=True)
        (self.dir / _PUBLIC / f"{key_id(public)[:16]}.pem").write_bytes(public)
        tmp = self.dir / f".{_PRIVATE}.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.replace(tmp, self.dir / _PRIVATE)

    def _read_private(self, path: Path, source: str) -> SigningKey:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SecurityError(f"signing key {source}: cannot read {path}: {exc}") from exc
        try:
            private = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise SecurityError(
                f"signing key {path}: not an unencrypted PEM private key ({exc})"
            ) from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise SecurityError(
                f"signing key {path}: not an elliptic-curve key ({type(private).__name__})",
                hint="OpenSSF model-signing signs with NIST P-256/P-384/P-521 keys",
            )
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return SigningKey(path, PublicKey(key_id(pem), pem, source))
