"""The artifact store contract.

Artifacts are content-addressed: a blob's address is ``sha256:<hex>`` of its bytes, and every
read checks the bytes against that address. A folder is stored as one blob per file plus a
manifest blob (JSON, sorted) that maps relative paths to file digests; the manifest's digest is
the folder's address.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from pydantic import BaseModel

from opsloop.errors import ArtifactError

if TYPE_CHECKING:
    from pathlib import Path

DIGEST_PREFIX = "sha256:"
CHUNK = 1 << 20


class ManifestEntry(BaseModel):
    """One file of a folder artifact."""

    digest: str
    size: int


class Manifest(BaseModel):
    """The files of a folder artifact, by relative POSIX path."""

    kind: str = "opsloop.dir/v1"
    files: dict[str, ManifestEntry]

    @property
    def size(self) -> int:
        """Total size of the folder in bytes."""
        return sum(e.size for e in self.files.values())


def digest_bytes(data: bytes) -> str:
    """Return the content address of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> tuple[str, int]:
    """Return the content address and size of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return DIGEST_PREFIX + h.hexdigest(), size


def check_digest(digest: str) -> str:
    """Return the hex part of a well-formed digest, or raise ArtifactError."""
    if not digest.startswith(DIGEST_PREFIX):
        raise ArtifactError(f"not an artifact digest: {digest!r} (expected 'sha256:<64 hex>')")
    hexpart = digest[len(DIGEST_PREFIX) :]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ArtifactError(f"not an artifact digest: {digest!r} (expected 'sha256:<64 hex>')")
    return hexpart


class ArtifactStore(ABC):
    """Content-addressed blob and folder storage with a digest check on every read."""

    url: str

    @abstractmethod
    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest. Storing the same bytes twice is a no-op."""

    @abstractmethod
    def put_file(self, path: Path) -> str:
        """Store the file at ``path`` and return its digest."""

    @abstractmethod
    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's bytes; raise DigestMismatchError if they do not match ``digest``."""

    @abstractmethod
    def get_file(self, digest: str, dest: Path) -> Path:
        """Write the blob to ``dest`` (verified) and return ``dest``."""

    @abstractmethod
    def exists(self, digest: str) -> bool:
        """Whether a blob is stored under ``digest``."""

    @abstractmethod
    def size(self, digest: str) -> int:
        """Size of the blob in bytes."""

    def delete(self, digest: str) -> bool:
        """Remove the blob ``digest``; whether it was there (object stores may not say).

        Only for blobs that nothing else can share, such as the prediction log's chunks
        (content addressing would otherwise let one owner delete another's bytes).

        Raises:
            ArtifactError: This store cannot delete blobs.
        """
        raise ArtifactError(f"the artifact store {self.url} cannot delete blobs")

    def put_dir(self, path: Path) -> str:
        """Store every file under the folder ``path`` and return the folder's digest."""
        if not path.is_dir():
            raise ArtifactError(f"not a folder: {path}")
        files: dict[str, ManifestEntry] = {}
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            digest = self.put_file(file)
            files[rel] = ManifestEntry(digest=digest, size=file.stat().st_size)
        manifest = Manifest(files=files)
        return self.put_bytes(manifest.model_dump_json().encode())

    def get_manifest(self, digest: str) -> Manifest:
        """Return the manifest of a folder artifact."""
        raw = self.get_bytes(digest)
        try:
            return Manifest.model_validate_json(raw)
        except ValueError as exc:
            raise ArtifactError(f"artifact {digest} is not a folder manifest") from exc

    def get_dir(self, digest: str, dest: Path) -> Path:
        """Materialize the folder artifact ``digest`` under ``dest`` (each file verified)."""
        manifest = self.get_manifest(digest)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, entry in manifest.files.items():
            target = (dest / rel).resolve()
            if dest.resolve() not in target.parents:
                raise ArtifactError(f"artifact {digest}: path escapes the folder: {rel!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.get_file(entry.digest, target)
        return dest
