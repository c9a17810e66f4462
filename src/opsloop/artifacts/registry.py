"""Pick an artifact store backend from a URL scheme.

Another distribution adds a scheme with an entry point in the group
``opsloop.artifact_stores`` (the entry point's name is the scheme) naming an
:class:`ArtifactBackend`, or a callable ``open(url, **storage_options)`` returning an
:class:`~opsloop.artifacts.base.ArtifactStore`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from opsloop.errors import ConfigError, MissingDependencyError
from opsloop.plugins import Registry
from opsloop.redact import redact, redact_url, remember

if TYPE_CHECKING:
    from collections.abc import Callable

    from opsloop.artifacts.base import ArtifactStore

__all__ = ["ARTIFACT_STORES", "ArtifactBackend", "open_artifact_store"]


@dataclass(frozen=True)
class ArtifactBackend:
    """How the artifact stores of one URL scheme are opened.

    Attributes:
        open: Called as ``open(url, **storage_options)``; returns the store.
        requires: A module the scheme needs, checked before ``open`` is called.
        extra: The opsloop extra that installs ``requires``.
    """

    open: Callable[..., ArtifactStore]
    requires: str | None = None
    extra: str | None = None


def _open_fsspec(url: str, **storage_options: Any) -> ArtifactStore:
    # Lazy imports here and below (noqa: PLC0415) of opsloop.artifacts: each loads only where it is
    # used, so importing this module stays light.
    from opsloop.artifacts.fsspec_store import FsspecArtifactStore  # noqa: PLC0415

    return FsspecArtifactStore(url, **storage_options)


def _backend(name: str, obj: Any) -> ArtifactBackend:
    if isinstance(obj, ArtifactBackend):
        return obj
    if callable(obj):
        return ArtifactBackend(open=obj)
    raise TypeError(f"{obj!r} is neither an ArtifactBackend nor callable")


ARTIFACT_STORES: Registry[ArtifactBackend] = Registry(
    "artifact store", "opsloop.artifact_stores", check=_backend
)
"""Artifact store backends by URL scheme."""

ARTIFACT_STORES.register("file", ArtifactBackend(open=_open_fsspec))
ARTIFACT_STORES.register("memory", ArtifactBackend(open=_open_fsspec))
ARTIFACT_STORES.register("s3", ArtifactBackend(open=_open_fsspec, requires="s3fs", extra="s3"))


def open_artifact_store(
    url: str,
    *,
    setting: str = "artifact store URL",
    state_dir: Path | None = None,
    **storage_options: Any,
) -> ArtifactStore:
    """Open the artifact store at ``url``; a bare path means a local folder.

    A local store's folder is created when its parent exists; inside ``state_dir`` (the
    project's ``.opsloop``) any missing folder is created. Any other missing folder is an
    error: a typo must not scatter folders over the disk.

    Args:
        url: ``file:///PATH``, a bare path, ``s3://BUCKET/PREFIX`` or ``memory://NAME``.
        setting: Where the URL came from (``OPSLOOP_ARTIFACT_URL``), for messages.
        state_dir: The project's state folder.
        storage_options: Passed to fsspec (e.g. ``client_kwargs``).

    Raises:
        ConfigError: The scheme is not supported, the URL is malformed, or a local folder's
            parent does not exist; names ``setting``, password masked.
        MissingDependencyError: The scheme needs an extra that is not installed.
        PluginError: The scheme's plugin cannot be imported.
    """
    remember(url)
    if "://" not in url:
        url = Path(url).expanduser().resolve().as_uri()
    shown = redact_url(url)
    scheme, _, rest = url.partition("://")
    if scheme not in ARTIFACT_STORES:
        raise ConfigError(
            f"{setting}: unsupported artifact store URL {shown!r}: scheme '{scheme}' is not one "
            f"of {', '.join(ARTIFACT_STORES.names())}"
        )
    authority = rest.split("/", 1)[0]
    if authority.count("@") > 1:
        raise ConfigError(
            f"{setting}: the password holds an unescaped '@' in {shown!r}",
            hint="percent-encode it in the URL: '@' as %40, ':' as %3A, '/' as %2F",
        )
    backend = ARTIFACT_STORES.get(scheme)
    if backend.requires is not None and importlib.util.find_spec(backend.requires) is None:
        raise MissingDependencyError(backend.requires, backend.extra or backend.requires)
    if scheme == "file":
        _check_folder(Path(url2pathname(urlsplit(url).path)), setting, state_dir)
    try:
        return backend.open(url, **storage_options)
    except (ValueError, TypeError, OSError) as exc:
        reason = " ".join(redact(str(exc), url).split())
        raise ConfigError(f"{setting}: cannot open {shown!r}: {reason}") from None


def _check_folder(root: Path, setting: str, state_dir: Path | None) -> None:
    if root.is_dir():
        return
    if state_dir is not None and root.is_relative_to(state_dir) and state_dir.parent.is_dir():
        return
    if not root.parent.is_dir():
        raise ConfigError(
            f"{setting}: folder {root.parent} does not exist",
            hint="create it first, or point the artifact store at an existing folder",
        )
