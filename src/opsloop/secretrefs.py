"""Secret references: settings that hold secrets name where the secret is, not the secret.

A value written ``env:NAME`` is read from the environment variable ``NAME``; ``file:PATH``
from the file at ``PATH`` (relative paths are relative to the project; surrounding whitespace
and the final newline are dropped; ``file://...`` is a URL, not a reference). References are
resolved when the setting is used, not when ``opsloop.yaml`` is loaded, so the spec as
printed or diffed shows the reference only. Every
resolved value is remembered by :mod:`opsloop.redact`, which masks it in every message, log
line, parameter and event that goes through :func:`opsloop.redact.redact`.

HashiCorp Vault (``vault:``) is not supported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from opsloop.errors import ConfigError
from opsloop.redact import redact_url, remember, remember_secret, url_secrets

__all__ = ["REFERENCE", "is_reference", "literal_secret_warning", "resolve_secret"]

# file:// is a URL (a local artifact store), not a reference.
REFERENCE = re.compile(r"^(env|file):(?!//)(.+)$", re.DOTALL)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_reference(value: object) -> bool:
    """The value is an ``env:NAME`` or ``file:PATH`` reference."""
    return isinstance(value, str) and REFERENCE.match(value) is not None


def resolve_secret(
    value: str, *, setting: str, base_dir: Path | None = None, url: bool = False
) -> str:
    """The secret a setting's value refers to (or the value itself when it is no reference).

    Args:
        value: ``env:NAME``, ``file:PATH`` or a literal.
        setting: The setting's name, for messages (``store.url``, ``notify.webhook``).
        base_dir: What a relative ``file:`` path is relative to (default: the working folder).
        url: The secret is a URL whose password and credential parameters are its secret
            parts (a store URL): only those are masked in messages, not the whole URL.

    Raises:
        ConfigError: The environment variable is not set or empty, the file cannot be read or
            is empty, or the name is not a valid environment variable name.
    """
    match = REFERENCE.match(value)
    if match is None:
        return value
    kind, target = match.group(1), match.group(2).strip()
    if kind == "env":
        if not _ENV_NAME.fullmatch(target):
            raise ConfigError(f"{setting}: {target!r} is not an environment variable name")
        secret = os.environ.get(target, "")
        if not secret:
            raise ConfigError(
                f"{setting}: environment variable {target} is not set "
                f"(the setting is env:{target})",
                hint=f"export {target}=...",
            )
    else:
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"{setting}: cannot read the secret file {path}: {reason}") from None
        if not secret:
            raise ConfigError(f"{setting}: the secret file {path} is empty")
    if url:
        remember(secret)
    else:
        remember_secret(secret)
    return secret


def literal_secret_warning(value: str | None, *, setting: str) -> str | None:
    """A warning when a URL setting written in a file holds its password (or a credential
    parameter) literally, else None."""
    if not value or is_reference(value) or not url_secrets(value):
        return None
    return (
        f"{setting} holds a password in opsloop.yaml ({redact_url(value)}): keep secrets out of "
        "the repository with a reference such as env:STORE_URL or file:/run/secrets/store-url"
    )
