"""Content-addressed artifact storage over fsspec."""

from opsloop.artifacts.base import ArtifactStore, Manifest, ManifestEntry, digest_bytes, digest_file
from opsloop.artifacts.registry import open_artifact_store

__all__ = [
    "ArtifactStore",
    "Manifest",
    "ManifestEntry",
    "digest_bytes",
    "digest_file",
    "open_artifact_store",
]
