"""The rules for names: models, aliases and policies; steps and pipelines; step outputs.

A name is 1-128 characters: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or a
digit. It is matched as a whole (``re.fullmatch``): a pattern anchored with ``$`` would also
accept a trailing newline (``"churn\\n"``), which then splits log lines, file names and Git
documents.
"""

from __future__ import annotations

import re

__all__ = [
    "NAME_PATTERN",
    "NAME_RULE",
    "OUTPUT_NAME",
    "STEP_NAME",
    "check_name",
    "is_name",
]

#: The name rule as a regular expression without anchors, for composing bigger patterns (model
#: URIs); match it with ``re.fullmatch`` or anchor it with ``\A`` and ``\Z``.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"

#: The rule in words, for error messages.
NAME_RULE = "letters, digits, '_', '-', '.' (1-128 characters, starting with a letter or digit)"

_NAME = re.compile(NAME_PATTERN)

#: Names of steps and pipelines: Python function names may start with ``_``; use fullmatch.
STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
#: Names of step outputs (Python identifiers); use fullmatch.
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def is_name(value: object) -> bool:
    """Whether ``value`` is a string that follows the name rule."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(kind: str, name: object, error: type[Exception] = ValueError) -> str:
    """Return ``name`` if it follows the name rule, else raise ``error``.

    Args:
        kind: What the name names (``model``, ``alias``, ``policy`` …), for the message.
        name: The name to check.
        error: The exception class to raise; called with the message alone.

    Raises:
        error: The name is not a string or breaks the rule (the message shows it with repr).
    """
    if not is_name(name):
        raise error(f"invalid {kind} name {name!r}: use {NAME_RULE}")
    assert isinstance(name, str)
    return name
