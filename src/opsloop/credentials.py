"""Saved API tokens of control-plane servers (``opsloop login``): one file under the user's
config folder, readable by its owner alone, keyed by server URL.

It sits at the bottom of the package so that the project context can read a saved token for
``OPSLOOP_SERVER`` when ``OPSLOOP_TOKEN`` is not set; logging in and out live in
:mod:`opsloop.secops.credentials`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import platformdirs

from opsloop.errors import ConfigError, SecurityError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CREDENTIALS_FILE",
    "SERVER_ENV",
    "Credential",
    "credentials_path",
    "load_credentials",
    "logout",
    "normalize_server",
    "save_credential",
    "saved_token",
]

#: The server the CLI talks to, when set (else it works on the project's store directly).
SERVER_ENV = "OPSLOOP_SERVER"
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credential:
    """A token saved for one server.

    Args:
        server: The server's URL, normalized (:func:`normalize_server`).
        identity: The name the server gave for the token's identity when it was saved.
        token: The API token (left out of the ``repr``).
        saved_at: When it was saved (ISO 8601, UTC).
    """

    server: str
    identity: str
    token: str = field(repr=False)
    saved_at: str = ""


def normalize_server(url: str) -> str:
    """The server URL as credentials are keyed: ``http(s)://host[:port][/path]``, lower-case
    scheme and host, no trailing ``/``.

    Raises:
        ConfigError: Not an http(s) URL with a host, or it holds a user, password, query or
            fragment (a token never travels in a URL).
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"server URL {url!r} is not http(s)://HOST[:PORT]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            "a server URL holds no user, password, query or fragment: the token is read "
            "from --token-file or standard input"
        )
    netloc = parts.hostname.lower() if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def credentials_path(root: Path | None = None) -> Path:
    """The credentials file under ``root`` (default: the user's config folder)."""
    base = Path(root) if root is not None else Path(platformdirs.user_config_dir("opsloop"))
    return base / CREDENTIALS_FILE


def _check_private(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecurityError(
            f"credentials file {path} may be read by other users (mode {mode:04o})",
            hint=f"chmod 600 {path}",
        )


def load_credentials(root: Path | None = None) -> dict[str, Credential]:
    """The saved credentials by server URL (none when the file does not exist).

    Raises:
        SecurityError: The file may be read by other users.
        ConfigError: The file is not a credentials file.
    """
    path = credentials_path(root)
    if not path.exists():
        return {}
    _check_private(path)
    try:
        data = json.loads(path.read_text("utf-8"))
        servers = data["servers"]
        return {
            url: Credential(
                server=url,
                identity=str(entry["identity"]),
                token=str(entry["token"]),
                saved_at=str(entry.get("saved_at", "")),
            )
            for url, entry in servers.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"credentials file {path} is not readable: {type(exc).__name__}",
            hint=f"remove it and log in again: rm {path}",
        ) from None


def _write(path: Path, credentials: Mapping[str, Credential]) -> None:
    """Replace the file at once, readable by its owner alone from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {
        "version": 1,
        "servers": {
            url: {k: v for k, v in asdict(c).items() if k != "server"}
            for url, c in sorted(credentials.items())
        },
    }
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_credential(credential: Credential, root: Path | None = None) -> Path:
    """Save (or replace) the token of ``credential.server``; returns the file."""
    saved = load_credentials(root)
    saved[credential.server] = credential
    path = credentials_path(root)
    _write(path, saved)
    return path


def logout(server: str, root: Path | None = None) -> bool:
    """Forget the token of ``server``; whether there was one."""
    url = normalize_server(server)
    saved = load_credentials(root)
    if saved.pop(url, None) is None:
        return False
    _write(credentials_path(root), saved)
    return True


def saved_token(server: str, root: Path | None = None) -> str | None:
    """The token saved for ``server`` by ``opsloop login``, or None."""
    found = load_credentials(root).get(normalize_server(server))
    return found.token if found is not None else None
