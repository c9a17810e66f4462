"""Pick an artifact store backend from a URL scheme."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from opsloop.artifacts.base import ArtifactStore
from opsloop.errors import ConfigError, MissingDependencyError
from opsloop.redact import redact, redact_url, remember

#: URL scheme → (module needed, extra that installs it); None when always available.
SCHEMES: dict[str, tuple[str, str] | None] = {
    "file": None,
    "memory": None,
    "s3": ("s3fs", "s3"),
}


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
    """
    from opsloop.artifacts.fsspec_store import FsspecArtifactStore

    remember(url)
    if "://" not in url:
        url = Path(url).expanduser().resolve().as_uri()
    shown = redact_url(url)
    scheme, _, rest = url.partition("://")
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{setting}: unsupported artifact store URL {shown!r}: scheme '{scheme}' is not one "
            f"of {', '.join(sorted(SCHEMES))}"
        )
    authority = rest.split("/", 1)[0]
    if authority.count("@") > 1:
        raise ConfigError(
            f"{setting}: the password holds an unescaped '@' in {shown!r}",
            hint="percent-encode it in the URL: '@' as %40, ':' as %3A, '/' as %2F",
        )
    need = SCHEMES[scheme]
    if need is not None and importlib.util.find_spec(need[0]) is None:
        raise MissingDependencyError(need[0], need[1])
    if scheme == "file":
        _check_folder(Path(url2pathname(urlsplit(url).path)), setting, state_dir)
    try:
        return FsspecArtifactStore(url, **storage_options)
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
