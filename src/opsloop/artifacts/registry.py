"""Pick an artifact store backend from a URL scheme."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from opsloop.artifacts.base import ArtifactStore
from opsloop.errors import ConfigError, MissingDependencyError

#: URL scheme → (module needed, extra that installs it); None when always available.
SCHEMES: dict[str, tuple[str, str] | None] = {
    "file": None,
    "memory": None,
    "s3": ("s3fs", "s3"),
}


def open_artifact_store(url: str, **storage_options: Any) -> ArtifactStore:
    """Open the artifact store at ``url``; a bare path means a local folder.

    Raises:
        ConfigError: The scheme is not supported.
        MissingDependencyError: The scheme needs an extra that is not installed.
    """
    from opsloop.artifacts.fsspec_store import FsspecArtifactStore

    if "://" not in url:
        url = Path(url).expanduser().resolve().as_uri()
    scheme = url.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unsupported artifact store URL {url!r}: scheme '{scheme}' is not one of "
            f"{', '.join(sorted(SCHEMES))}"
        )
    need = SCHEMES[scheme]
    if need is not None and importlib.util.find_spec(need[0]) is None:
        raise MissingDependencyError(need[0], need[1])
    return FsspecArtifactStore(url, **storage_options)
