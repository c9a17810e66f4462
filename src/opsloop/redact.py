"""Keep the secrets of store and artifact URLs out of every message.

A URL's password (``postgresql://alice:PASSWORD@host/db``) and credential query values
(``?password=...``, ``?X-Amz-Signature=...``) are masked as ``***``, also in URLs that do not
parse: an unescaped ``@`` in the password, a port that is not a number, no scheme. Masking
too much is harmless; masking too little is not, so everything between the first ``:`` of
the user part and the *last* ``@`` counts as the password.

The URLs opsloop opens are remembered (:func:`remember`), so :func:`redact` can also mask
their secrets in texts that quote them in pieces, such as a database driver's error. Secret
values resolved from references (``env:NAME``, ``file:PATH``: tokens, webhook URLs) are
remembered whole (:func:`remember_secret`) and masked wherever :func:`redact` runs. API tokens
of the control plane (``opsloop_`` and 43 URL-safe characters) are masked wherever they appear,
remembered or not.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "API_TOKEN",
    "API_TOKEN_PREFIX",
    "MASK",
    "redact",
    "redact_url",
    "redact_value",
    "remember",
    "remember_secret",
    "url_secrets",
]

MASK = "***"

#: What every control-plane API token starts with, so that a scanner (and a person) knows one.
API_TOKEN_PREFIX = "opsloop_"
#: The shape of a control-plane API token (made by opsloop.store.repos.access): the prefix and
#: 43 URL-safe characters. The look-behind and look-ahead keep a longer identifier that merely
#: starts with the prefix from matching.
API_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-])" + re.escape(API_TOKEN_PREFIX) + r"[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])"
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL in prose ends before a space or quote, and not on the punctuation that follows it.
# The scheme is bounded: unbounded, a long run of letters without '://' is tried from every
# start (quadratic; a 1 MB parameter took minutes).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s'\"<>`]*[^\s'\"<>`.,:;)\]]")
_CREDENTIAL_KEY = re.compile(
    r"pass|pwd|secret|token|key|credential|signature|^sig$|auth", re.IGNORECASE
)
# A secret this short would mask ordinary words of a message wherever they occur; it is
# still masked where it stands in a URL.
_MIN_LOOSE = 4

_known: set[str] = set()
_lock = threading.Lock()


def _split(url: str) -> tuple[str, str | None, str | None, str]:
    """``(head, user, password, tail)``: head is the scheme part, tail what follows the ``@``;
    user and password are None when the URL has no user part (password None: no ``:``)."""
    m = _SCHEME.match(url)
    head, rest = (m.group(0), url[m.end() :]) if m else ("", url)
    at = rest.rfind("@")
    if at < 0:
        return head, None, None, rest
    userinfo, tail = rest[:at], rest[at + 1 :]
    user, colon, password = userinfo.partition(":")
    return head, user, password if colon else None, tail


def _query_secrets(tail: str) -> list[str]:
    _, _, query = tail.partition("?")
    query = query.partition("#")[0]
    found = []
    for pair in query.split("&") if query else []:
        key, eq, value = pair.partition("=")
        if eq and value and _CREDENTIAL_KEY.search(unquote(key)):
            found.append(value)
    return found


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL: its password and credential query values, as written and
    percent-decoded."""
    _, _, password, tail = _split(url)
    raw = [s for s in [password or "", *_query_secrets(tail)] if s]
    return sorted({*raw, *(unquote(s) for s in raw)} - {""}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """The URL with its password and credential query values masked (see the module text)."""
    head, user, password, tail = _split(url)
    if user is None:
        shown = head + tail
    elif password is None:
        shown = f"{head}{user}@{tail}"
    else:
        shown = f"{head}{user}:{MASK}@{tail}"
    path, q, query = tail.partition("?")
    if q:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            secret = eq and value and _CREDENTIAL_KEY.search(unquote(key.partition("#")[0]))
            pairs.append(f"{key}={MASK}" if secret else pair)
        prefix = shown[: len(shown) - len(tail)]
        shown = prefix + path + "?" + "&".join(pairs)
    return shown


def _loose(url: str) -> list[str]:
    # A "secret" that the redacted URL shows anyway (a password equal to the user name) would
    # only garble messages if it were masked everywhere else.
    shown = redact_url(url)
    return [s for s in url_secrets(url) if len(s) >= _MIN_LOOSE and s not in shown]


def remember(url: str | None) -> None:
    """Remember a URL's secrets so that :func:`redact` masks them in any text."""
    if not url:
        return
    secrets = _loose(url)
    if secrets:
        with _lock:
            _known.update(secrets)


def remember_secret(value: str | None) -> None:
    """Remember a secret value (a token, a webhook URL) so that :func:`redact` masks it,
    whole, in any text. Values shorter than four characters are not remembered: they would
    mask ordinary words."""
    if value and len(value) >= _MIN_LOOSE:
        with _lock:
            _known.add(value)


def redact(text: str, *urls: str | None) -> str:
    """``text`` with the secrets of ``urls`` and of every remembered URL masked, and every URL
    in it redacted."""
    with _lock:
        secrets = set(_known)
    for url in urls:
        if url:
            secrets.update(_loose(url))
    return _redact_text(text, sorted(secrets, key=len, reverse=True))


def _redact_text(text: str, secrets: Sequence[str]) -> str:
    """:func:`redact` with its secrets given, longest first."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    if API_TOKEN_PREFIX in text:
        text = API_TOKEN.sub(MASK, text)
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_value(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string in it (dict values, list items);
    other values as they are. For what is written to the store: events, params, tags."""
    # The remembered secrets are read once for all the strings of the value.
    with _lock:
        secrets = set(_known)
    return _redact_in(value, sorted(secrets, key=len, reverse=True))


def _redact_in(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_in(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_in(v, secrets) for v in value]
    return value
