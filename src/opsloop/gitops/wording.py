"""Deployment changes and states in words: what ``sync``, ``status``, ``history`` and the
commit messages say (``traffic: v1 100% → v1 90%, v2 10%``, ``not running → running``),
never a Python repr."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["describe_change", "describe_diff", "split_text", "versions_text"]

NONE = "none"


def _version_key(version: Any) -> tuple[int, str]:
    text = str(version)
    return (int(text), text) if text.isdigit() else (2**62, text)


def _percent(weight: float, total: float) -> str:
    share = round(weight * 100.0 / total, 1) if total else 0.0
    return f"{share:g}%"


def split_text(traffic: Mapping[Any, Any] | None, shadow: Iterable[Any] = ()) -> str:
    """A traffic split as words: ``v1 90%, v2 10%`` (weights as shares of their sum),
    ``v1`` alone when one version takes everything, shadows after ``shadow``."""
    weights = {
        str(v): float(w)
        for v, w in (traffic or {}).items()
        if isinstance(w, int | float) and not isinstance(w, bool) and w > 0
    }
    total = sum(weights.values())
    routed = sorted(weights, key=_version_key)
    text = ", ".join(f"v{v} {_percent(weights[v], total)}" for v in routed) or NONE
    shadows = sorted({str(v) for v in shadow}, key=_version_key)
    if shadows:
        text += "; shadow " + versions_text(shadows)
    return text


def versions_text(versions: Iterable[Any]) -> str:
    """``v3, v4``, or ``none``."""
    return ", ".join(f"v{v}" for v in sorted({str(v) for v in versions}, key=_version_key)) or NONE


def _pairs(value: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in value.items()) or NONE


def _resources(value: Mapping[str, Any]) -> str:
    parts = [
        f"{kind} {_pairs(values)}"
        for kind, values in value.items()
        if isinstance(values, Mapping) and values
    ]
    return "; ".join(parts) or NONE


def _value(key: str, value: Any) -> str:
    if value is None or value in ({}, []):
        return NONE
    if key == "version":
        return f"v{value}"
    if key == "alias":
        return f"@{value}"
    if key == "traffic" and isinstance(value, Mapping):
        return split_text(value)
    if key == "shadow" and isinstance(value, list):
        return versions_text(value)
    if key == "resources" and isinstance(value, Mapping):
        return _resources(value)
    if key.startswith("routing") and isinstance(value, Mapping):
        return split_text(value.get("traffic"), value.get("shadow") or ())
    if isinstance(value, Mapping):
        return _pairs(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def describe_change(key: str, live: Any, desired: Any) -> str:
    """One field's change: ``traffic: v1 100% → v1 90%, v2 10%``, ``not running → running``."""
    if key == "deployment":
        before = "running" if live else "not running"
        after = "running" if desired else "stopped (not in Git)"
        return f"{before} → {after}"
    if key == "running":
        return f"replicas running: {live} → {desired}"
    if key.startswith("routing["):
        index = key[len("routing[") : -1]
        return (
            f"replica {index} routing (changed outside Git): "
            f"{_value(key, live)} → {_value(key, desired)}"
        )
    return f"{key}: {_value(key, live)} → {_value(key, desired)}"


def describe_diff(diff: Mapping[str, Any]) -> str:
    """Every change of a diff (``{field: {"live": …, "desired": …}}``), ``; ``-separated."""
    parts = []
    for key, change in diff.items():
        if isinstance(change, Mapping):
            parts.append(describe_change(key, change.get("live"), change.get("desired")))
        else:
            parts.append(f"{key}: {change}")
    return "; ".join(parts)
