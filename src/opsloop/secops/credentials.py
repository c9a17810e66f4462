"""The client side of API tokens: the credentials file ``opsloop login`` writes.

One JSON file in the user's config folder (``credentials.json``, mode 0600, its folder 0700)
holds a token per server URL, with the identity the server said it belongs to. A token is read
from a file or standard input, never from a command-line argument, which every user of the
machine can see in the process list.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from opsloop.credentials import (
    CREDENTIALS_FILE,
    SERVER_ENV,
    Credential,
    credentials_path,
    load_credentials,
    logout,
    normalize_server,
    save_credential,
)
from opsloop.errors import AuthenticationError, ConfigError, SecurityError
from opsloop.secops.access import local_identity

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

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

_MAX_TOKEN = 4096


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
