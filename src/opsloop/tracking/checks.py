"""Checks of a metric point: at log time (refused at the call) and before a write (set aside).

The hot path (:meth:`ActiveRun.log_metric`) tests the common case inline — a known key, a
``float`` value, an ``int`` step in range — and calls these only for anything else, so a
well-formed point costs a few comparisons.
"""

from __future__ import annotations

import operator
from typing import Any

from opsloop.errors import TrackingError

MAX_KEY = 256
STEP_MIN = -(2**63)
STEP_MAX = 2**63 - 1
# Epoch milliseconds from 1970 up to the year 10000: anything else is a unit mistake or garbage.
TIMESTAMP_MAX = 253_402_300_800_000
_HINT = "NaN and infinities are kept; strings, None and containers are not numbers"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_key(key: Any) -> str:
    """A metric key: a string of 1-256 printable characters."""
    if not isinstance(key, str):
        raise TrackingError(f"metric key {_short(key)} is not a string")
    if not key or len(key) > MAX_KEY:
        raise TrackingError(f"invalid metric key {_short(key)}: 1-{MAX_KEY} characters")
    if not key.isprintable():
        raise TrackingError(
            f"invalid metric key {_short(key)}: control or unprintable characters",
            hint="use letters, digits, spaces and punctuation such as '_', '-', '.', '/'",
        )
    return key


def check_value(key: str, value: Any) -> float:
    """A metric value as a float: any real number, NaN and infinities included."""
    if isinstance(value, str | bytes | bytearray):
        raise TrackingError(f"metric '{key}': value {_short(value)} is not a number", hint=_HINT)
    try:
        return float(value)
    except OverflowError:
        raise TrackingError(
            f"metric '{key}': value {_short(value)} is too large for a float"
        ) from None
    except (TypeError, ValueError):
        raise TrackingError(
            f"metric '{key}': value {_short(value)} is not a number", hint=_HINT
        ) from None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_step(key: str, step: Any) -> int:
    """A step: an integer that fits a 64-bit column."""
    n = _integer(step)
    if n is None:
        raise TrackingError(f"metric '{key}': step {_short(step)} is not an integer")
    if not STEP_MIN <= n <= STEP_MAX:
        raise TrackingError(f"metric '{key}': step {n} is out of range (a 64-bit integer)")
    return n


def check_timestamp(key: str, timestamp: Any) -> int:
    """A timestamp: integer epoch milliseconds between 1970 and the year 10000."""
    n = _integer(timestamp)
    if n is None:
        raise TrackingError(
            f"metric '{key}': timestamp {_short(timestamp)} is not an integer",
            hint="pass epoch milliseconds, e.g. int(time.time() * 1000)",
        )
    if not 0 <= n < TIMESTAMP_MAX:
        raise TrackingError(
            f"metric '{key}': timestamp {n} is not epoch milliseconds between 1970 and 9999",
            hint="pass epoch milliseconds, e.g. int(time.time() * 1000)",
        )
    return n


def storable_problem(point: tuple[Any, Any, Any, Any]) -> str | None:
    """Why the store cannot hold ``(key, value, step, timestamp)``, or None if it may.

    Looser than the log-time checks (a key may hold a tab, a timestamp any 64-bit integer):
    it only sets aside what no backend can store, before a refused batch is split further.
    """
    key, value, step, timestamp = point
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or "\x00" in key:
        return f"invalid metric key {_short(key)}"
    try:
        key.encode()
    except UnicodeEncodeError:
        return f"invalid metric key {_short(key)}: not encodable as UTF-8"
    if not isinstance(value, float | int):
        return f"value {_short(value)} is not a number"
    if isinstance(value, int) and not STEP_MIN <= value <= STEP_MAX:
        return f"value {value} does not fit the store (convert it to a float)"
    for name, n in (("step", step), ("timestamp", timestamp)):
        if type(n) is not int or not STEP_MIN <= n <= STEP_MAX:
            return f"{name} {_short(n)} is not a 64-bit integer"
    return None
