"""Model URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``, or a
local folder (a path or a ``file://`` URL)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from opsloop.errors import NotFoundError, RegistryError
from opsloop.names import NAME_PATTERN

if TYPE_CHECKING:
    from opsloop.store import ModelVersionInfo, Store

__all__ = ["ModelRef", "parse_model_uri", "resolve_model_uri"]

SCHEME = "models:/"
_BY_VERSION = re.compile(rf"(?P<name>{NAME_PATTERN})/(?P<version>[0-9]+|latest)")
_BY_ALIAS = re.compile(rf"(?P<name>{NAME_PATTERN})@(?P<alias>{NAME_PATTERN})")
_FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: exactly one of ``version``, ``alias``, ``latest`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        return f"{SCHEME}{self.name}/{'latest' if self.latest else self.version}"


def parse_model_uri(uri: str | Path) -> ModelRef | Path:
    """Parse a model URI without touching any store.

    Returns:
        A :class:`ModelRef` for ``models:/`` URIs, else the local folder's path.

    Raises:
        RegistryError: A ``models:`` URI is malformed (the message shows the accepted forms).
    """
    if isinstance(uri, Path):
        return uri
    text = uri.strip()
    if text.startswith("models:"):
        if not text.startswith(SCHEME) or text.startswith("models://"):
            raise RegistryError(f"malformed model URI {uri!r}: use {_FORMS}")
        rest = text[len(SCHEME) :]
        if m := _BY_ALIAS.fullmatch(rest):
            return ModelRef(name=m["name"], alias=m["alias"])
        if m := _BY_VERSION.fullmatch(rest):
            if m["version"] == "latest":
                return ModelRef(name=m["name"], latest=True)
            version = int(m["version"])
            if version < 1:
                raise RegistryError(f"malformed model URI {uri!r}: versions start at 1")
            return ModelRef(name=m["name"], version=version)
        raise RegistryError(f"malformed model URI {uri!r}: use {_FORMS}")
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    if "://" in text:
        raise RegistryError(f"unsupported model URI {uri!r}: use {_FORMS}, or a local folder path")
    return Path(text).expanduser()


def resolve_model_uri(uri: str | Path, *, store: Store | None = None) -> ModelVersionInfo | Path:
    """Resolve a model URI to a registered version, or to an existing local folder.

    ``latest`` is the highest version number of the model.

    Args:
        uri: A ``models:/`` URI or a local folder.
        store: Metadata store (default: the current project's).

    Raises:
        RegistryError: The URI is malformed.
        NotFoundError: The model, version, alias or folder does not exist.
    """
    ref = parse_model_uri(uri)
    if isinstance(ref, Path):
        if not ref.is_dir():
            raise NotFoundError(
                f"model folder {ref} does not exist",
                hint=f"pass a packaged model folder or a model URI ({_FORMS})",
            )
        return ref
    if store is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where it
        # is used, so importing this module stays light.
        from opsloop.context import current_project  # noqa: PLC0415

        store = current_project().store
    if ref.alias is not None:
        return store.models.get_version_by_alias(ref.name, ref.alias)
    if ref.latest:
        latest = store.models.get(ref.name).latest_version
        if latest is None:
            raise NotFoundError(f"model '{ref.name}' has no versions")
        return store.models.get_version(ref.name, latest)
    assert ref.version is not None
    return store.models.get_version(ref.name, ref.version)
