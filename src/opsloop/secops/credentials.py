"""The client side of API tokens: the credentials file ``opsloop login`` writes.

One JSON file in the user's config folder (``credentials.json``, mode 0600, its folder 0700)
holds a token per server URL, with the identity the server said it belongs to. A token is read
from a file or standard input, never from a command-line argument, which every user of the
machine can see in the process list.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import platformdirs

from opsloop.errors import AuthenticationError, ConfigError, SecurityError
from opsloop.secops.access import local_identity

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CREDENTIALS_FILE",
    "SERVER_ENV",
    "Credential",
    "access_status",
    "credentials_path",
    "load_credentials",
    "login",
    "logout",
    "normalize_server",
    "read_token",
    "save_credential",
    "whoami",
]

#: The server the CLI talks to, when set (else it works on the project's store directly).
SERVER_ENV = "OPSLOOP_SERVER"
CREDENTIALS_FILE = "credentials.json"
_MAX_TOKEN = 4096


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


def read_token(text: str) -> str:
    """The token in ``text`` (a file's or standard input's content), surrounding blanks
    stripped.

    Raises:
        AuthenticationError: It is empty, longer than a token can be, or spans lines.
    """
    token = text.strip()
    if not token:
        raise AuthenticationError("no token given: pass it on standard input or --token-file")
    if len(token) > _MAX_TOKEN or any(c.isspace() for c in token):
        raise AuthenticationError("that is not an API token: one line without blanks")
    return token


def whoami(
    server: str, token: str, *, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    """Ask ``server`` whom ``token`` belongs to (``GET /api/v1/whoami``).

    Raises:
        AuthenticationError: The server refused the token.
        ConfigError: The server cannot be reached or does not answer as an opsloop server.
    """
    url = normalize_server(server)
    try:
        with httpx.Client(transport=transport, timeout=10.0) as client:
            resp = client.get(f"{url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code in (401, 403):
        raise AuthenticationError(
            f"{url} refused the token: it is unknown, expired or revoked, or its identity is "
            "disabled",
            hint="ask an admin for a new one: opsloop tokens create USER",
        )
    try:
        resp.raise_for_status()
        body = resp.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise ValueError("no name")
    except (httpx.HTTPStatusError, ValueError):
        raise ConfigError(
            f"{url} did not answer GET /api/v1/whoami as an opsloop server does "
            f"(status {resp.status_code})"
        ) from None
    return body


def login(
    server: str,
    token: str,
    *,
    root: Path | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[Credential, dict[str, Any]]:
    """Check ``token`` against ``server`` and save it; returns what was saved and the
    server's answer (name, kind, roles, grants). Nothing is saved when the check fails."""
    url = normalize_server(server)
    token = read_token(token)
    me = whoami(url, token, transport=transport)
    cred = Credential(
        server=url,
        identity=str(me["name"]),
        token=token,
        saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    save_credential(cred, root)
    return cred, me


def access_status(root: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """The one line ``opsloop status`` prints about who the CLI acts as."""
    env = os.environ if env is None else env
    server = env.get(SERVER_ENV, "").strip()
    try:
        saved = load_credentials(root)
    except (ConfigError, SecurityError) as exc:
        return f"access: credentials unusable ({exc})"
    if server:
        try:
            url = normalize_server(server)
        except ConfigError as exc:
            return f"access: {SERVER_ENV} is unusable ({exc})"
        cred = saved.get(url)
        if cred is None:
            return f"access: server {url}, not logged in (opsloop login {url})"
        return f"access: server {url} as {cred.identity}"
    line = f"access: local single-user mode ({local_identity().name}, all roles)"
    if saved:
        logged = ", ".join(f"{c.server} as {c.identity}" for c in saved.values())
        line += f"; logged in to {logged}"
    return line
