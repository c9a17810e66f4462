"""Artifact store over any fsspec filesystem (``file://``, ``s3://``, ``memory://``)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import fsspec

from opsloop.artifacts.base import CHUNK, DIGEST_PREFIX, ArtifactStore, check_digest, digest_file
from opsloop.errors import DigestMismatchError, NotFoundError
from opsloop.redact import redact_url


class FsspecArtifactStore(ArtifactStore):
    """Blobs live at ``<root>/sha256/<2 hex>/<64 hex>``.

    Writes go to a temporary name and are moved into place, so a reader never sees a partial
    blob under its final address; on object stores a single PUT is already atomic.

    Args:
        url: Root of the store, e.g. ``file:///data/artifacts`` or ``s3://bucket/prefix``.
        storage_options: Passed to fsspec (e.g. ``endpoint_url`` for S3).
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        self._local = "file" in _protocols(self.fs)
        if self._local:
            self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, digest: str) -> str:
        hexpart = check_digest(digest)
        return f"{self.root}/sha256/{hexpart[:2]}/{hexpart}"

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._path(digest)))

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self._path(digest)))
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {digest} is not in {self.safe_url}") from exc

    def delete(self, digest: str) -> bool:
        path = self._path(digest)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def put_bytes(self, data: bytes) -> str:
        digest = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if self.fs.exists(target):
            return digest
        if self._local:
            self._local_atomic_write(target, data)
        else:
            self.fs.pipe_file(target, data)
        return digest

    def put_file(self, path: Path) -> str:
        digest, _ = digest_file(path)
        target = self._path(digest)
        if self.fs.exists(target):
            return digest
        if self._local:
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                with path.open("rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.put_file(str(path), target)
        return digest

    def _local_atomic_write(self, target: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get_bytes(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {digest} is not in {self.safe_url}") from exc
        actual = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(
                f"artifact {digest} in {self.safe_url} is corrupted: "
                f"its content hashes to {actual}",
                hint="restore the blob from a backup or re-run the step that produced it",
            )
        return data

    def get_file(self, digest: str, dest: Path) -> Path:
        path = self._path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        h = hashlib.sha256()
        try:
            try:
                with self.fs.open(path, "rb") as src, tmp.open("wb") as dst:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        dst.write(chunk)
            except FileNotFoundError as exc:
                raise NotFoundError(f"artifact {digest} is not in {self.safe_url}") from exc
            actual = DIGEST_PREFIX + h.hexdigest()
            if actual != digest:
                raise DigestMismatchError(
                    f"artifact {digest} in {self.safe_url} is corrupted: "
                    f"its content hashes to {actual}",
                    hint="restore the blob from a backup or re-run the step that produced it",
                )
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        return dest

    def local_path(self, digest: str) -> Path | None:
        """The blob's path on local disk, for zero-copy reads; None on remote stores."""
        return Path(self._path(digest)) if self._local else None


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
