"""Bearer tokens of a model server: who may predict, send feedback or change what is served.

A token grants scopes: ``predict`` (the inference routes and model metadata), ``feedback``
(``POST /v1/feedback``) and ``admin`` (``/v1/admin/models``). The server token grants
``predict`` and ``feedback``; the feedback token only ``feedback`` (for a label pipeline that
must not predict); the admin token grants all three. Health, readiness, server
metadata and ``/metrics`` stay open, so probes and scrapers need no secret.

Tokens reach the server through the environment or a file, never a command-line argument
(which anyone on the machine can read in the process list).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opsloop.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ADMIN_TOKEN_ENV",
    "FEEDBACK_TOKEN_ENV",
    "SCOPES",
    "SERVE_TOKEN_ENV",
    "Scope",
    "TokenAuth",
    "is_loopback",
    "read_token",
]

Scope = Literal["predict", "feedback", "admin"]
SCOPES: tuple[Scope, ...] = ("predict", "feedback", "admin")

#: Environment variable holding the token for ``predict`` and ``feedback``.
SERVE_TOKEN_ENV = "OPSLOOP_SERVE_TOKEN"
#: Environment variable holding the feedback-only token.
FEEDBACK_TOKEN_ENV = "OPSLOOP_FEEDBACK_TOKEN"
#: Environment variable holding the admin token (every scope).
ADMIN_TOKEN_ENV = "OPSLOOP_ADMIN_TOKEN"

_BEARER = b"bearer "


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A name other than localhost may resolve anywhere: not loopback.
        return False


class TokenAuth:
    """Checks ``Authorization: Bearer TOKEN`` headers against the configured tokens.

    Args:
        tokens: ``(token, scopes)`` pairs; a scope no token grants is not guarded here.
    """

    def __init__(self, tokens: Iterable[tuple[str, Iterable[Scope]]]) -> None:
        # Digests, so that tokens of any length compare in the same time.
        self._tokens: list[tuple[bytes, frozenset[str]]] = [
            (hashlib.sha256(token.encode()).digest(), frozenset(scopes)) for token, scopes in tokens
        ]
        self.guarded: frozenset[str] = frozenset().union(*(s for _, s in self._tokens))

    def allows(self, authorization: bytes | str | None, scope: Scope) -> bool:
        """Whether the header value carries a token granting ``scope``.

        Every token is compared, in constant time, whatever matched first: how long the
        answer takes says nothing about which token, or how much of one, was right.
        """
        if authorization is None:
            return False
        raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
        if raw[:7].lower() != _BEARER:
            return False
        given = hashlib.sha256(raw[7:].strip()).digest()
        granted = False
        for token, scopes in self._tokens:
            if hmac.compare_digest(given, token) and scope in scopes:
                granted = True
        return granted


def read_token(
    *,
    file: Path | None,
    env_var: str,
    environ: Mapping[str, str] | None = None,
    what: str = "token",
) -> str | None:
    """A token from a file (first line, whitespace stripped) or else from an env variable.

    Raises:
        ConfigError: The file cannot be read or holds no token, or the token has whitespace.
    """
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read the {what}: {exc}") from exc
        token = text.strip()
        where = str(file)
    else:
        token = (environ if environ is not None else os.environ).get(env_var, "").strip()
        where = env_var
    if not token:
        if file is not None:
            raise ConfigError(f"{where}: the {what} file is empty")
        return None
    if any(ch.isspace() for ch in token):
        raise ConfigError(f"{where}: the {what} must be one word without whitespace")
    return token
