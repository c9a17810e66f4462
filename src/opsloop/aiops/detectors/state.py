"""Detector state as JSON: checkpoint a trained detector and resume it later, exactly.

A detector's state is its attributes: numbers, strings, containers, numpy arrays and the
small building blocks of this package (rolling windows, calibrators). :func:`dump_state`
walks them into plain JSON values with a tag per type; :func:`load_state` rebuilds them.

JSON rather than pickle: a checkpoint read back from the store must not be able to run code.
So only classes from an allow-list are ever rebuilt (those defined in this package and the
registered detectors), and only by setting attributes, never by calling a constructor or
``__setstate__`` with stored arguments. Written here because no library serialises arbitrary
``__slots__`` objects to JSON under such an allow-list.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from opsloop.aiops.detectors.base import Detector
from opsloop.aiops.detectors.registry import DETECTORS
from opsloop.errors import AIOpsError

__all__ = [
    "STATE_FORMAT",
    "detector_digest",
    "dump_state",
    "dumps_state",
    "load_state",
    "loads_state",
]

STATE_FORMAT = 1
"""Version of the checkpoint layout; a checkpoint of another version is not loaded."""

_PACKAGE = "opsloop.aiops.detectors"


def _allowed(cls: type) -> bool:
    if cls.__module__ == _PACKAGE or cls.__module__.startswith(_PACKAGE + "."):
        return True
    return any(cls is registered for _, registered in DETECTORS.items())


def _slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return [n for n in names if n not in ("__dict__", "__weakref__")]


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"f": repr(value)}


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _float(float(value))
    if isinstance(value, list):
        return {"l": [_encode(v) for v in value]}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, deque):
        return {"q": [_encode(v) for v in value], "m": value.maxlen}
    if isinstance(value, OrderedDict):
        return {"od": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, dict):
        return {"d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, set | frozenset):
        # Sets are stored in a canonical order, so equal states give equal checkpoints.
        items = sorted((_encode(v) for v in value), key=json.dumps)
        return {"fs" if isinstance(value, frozenset) else "s": items}
    if isinstance(value, np.ndarray):
        return {
            "a": [_encode(v) for v in value.ravel().tolist()],
            "dt": value.dtype.str,
            "sh": list(value.shape),
        }
    cls = type(value)
    if _allowed(cls):
        attrs: dict[str, Any] = {}
        if hasattr(value, "__dict__"):
            attrs.update(vars(value))
        for name in _slots(cls):
            if hasattr(value, name):
                attrs[name] = getattr(value, name)
        return {
            "o": f"{cls.__module__}:{cls.__qualname__}",
            "v": {k: _encode(v) for k, v in attrs.items()},
        }
    raise AIOpsError(f"cannot checkpoint a value of type {cls.__qualname__}")


def _class(path: str) -> type:
    module, _, qualname = path.partition(":")
    if not (module == _PACKAGE or module.startswith(_PACKAGE + ".")):
        for _, registered in DETECTORS.items():
            if f"{registered.__module__}:{registered.__qualname__}" == path:
                return registered
        raise AIOpsError(f"checkpoint names a class outside the detectors: {path}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type) or not _allowed(obj):
        raise AIOpsError(f"checkpoint names an unknown detector class: {path}")
    return obj


def _key(value: Any) -> Any:
    # Dictionary keys come back as lists from JSON only inside tags, so rebuilt keys are
    # already hashable tuples; this guards against a tampered checkpoint.
    try:
        hash(value)
    except TypeError as exc:
        raise AIOpsError("checkpoint has an unhashable dictionary key") from exc
    return value


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if not isinstance(value, dict):
        raise AIOpsError(f"malformed checkpoint value: {str(value)[:80]}")
    if "f" in value:
        return float(value["f"])
    if "l" in value:
        return [_decode(v) for v in value["l"]]
    if "t" in value:
        return tuple(_decode(v) for v in value["t"])
    if "q" in value:
        return deque((_decode(v) for v in value["q"]), maxlen=value["m"])
    if "od" in value:
        return OrderedDict((_key(_decode(k)), _decode(v)) for k, v in value["od"])
    if "d" in value:
        return {_key(_decode(k)): _decode(v) for k, v in value["d"]}
    if "s" in value:
        return {_key(_decode(v)) for v in value["s"]}
    if "fs" in value:
        return frozenset(_key(_decode(v)) for v in value["fs"])
    if "a" in value:
        dtype = np.dtype(value["dt"])
        if dtype.kind not in "biuf":
            raise AIOpsError(f"checkpoint holds an array of unsupported type {dtype}")
        flat = [_decode(v) for v in value["a"]]
        return np.array(flat, dtype=dtype).reshape(value["sh"])
    if "o" in value:
        cls = _class(value["o"])
        obj: Any = object.__new__(cls)
        for name, attr in value["v"].items():
            # object.__setattr__ also works for frozen dataclasses.
            object.__setattr__(obj, name, _decode(attr))
        return obj
    raise AIOpsError(f"malformed checkpoint value: {str(value)[:80]}")


def dump_state(detector: Detector) -> dict[str, Any]:
    """A JSON-safe copy of a detector's whole state (parameters and learnt state).

    Raises:
        AIOpsError: The detector holds a value that cannot be checkpointed.
    """
    if not _allowed(type(detector)):
        raise AIOpsError(
            f"{type(detector).__qualname__} is not a registered detector; it cannot be checkpointed"
        )
    return {"format": STATE_FORMAT, "detector": _encode(detector)}


def load_state(data: dict[str, Any]) -> Detector:
    """The detector a :func:`dump_state` result describes, ready to go on learning.

    Raises:
        AIOpsError: The checkpoint is of another format, malformed, or names a class that is
            not a detector part.
    """
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise AIOpsError(f"checkpoint is not of format {STATE_FORMAT}")
    detector = _decode(data.get("detector"))
    if not isinstance(detector, Detector):
        raise AIOpsError("checkpoint does not hold a detector")
    return detector


def dumps_state(detector: Detector) -> str:
    """:func:`dump_state` as a JSON string."""
    return json.dumps(dump_state(detector), separators=(",", ":"), allow_nan=False)


def loads_state(text: str) -> Detector:
    """:func:`load_state` from a JSON string.

    Raises:
        AIOpsError: The text is not JSON or not a checkpoint.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AIOpsError(f"checkpoint is not JSON: {exc}") from exc
    return load_state(data)


def detector_digest(detector: Detector) -> str:
    """A digest of a detector's class, parameters and checkpoint format.

    A checkpoint is resumed only by a detector with the same digest, so changing a setting
    (or upgrading the layout) starts afresh rather than resuming a state it does not fit.
    """
    cls = type(detector)
    text = json.dumps(
        [STATE_FORMAT, f"{cls.__module__}:{cls.__qualname__}", detector.get_params()],
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()
