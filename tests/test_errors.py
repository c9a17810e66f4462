"""The error tree: drawn in the docstring of ``opsloop.errors``, and defined there alone."""

from __future__ import annotations

import re
import subprocess
import sys

import opsloop.errors as errors
from opsloop.errors import OpsloopError

_TREE_LINE = re.compile(r"^    (?P<prefix>[│├└─ ]*)(?P<name>[A-Z]\w*Error)\b")


def _drawn_parents() -> dict[str, str | None]:
    """Each class of the docstring's tree with the class it is drawn under."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in errors.__doc__.splitlines():
        match = _TREE_LINE.match(line)
        if match is None:
            continue
        depth = len(match["prefix"]) // 4
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def _defined_parents() -> dict[str, str | None]:
    """Each error class of ``opsloop.errors`` with its base class."""
    parents: dict[str, str | None] = {}
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, OpsloopError):
            base = obj.__bases__[0]
            parents[name] = None if obj is OpsloopError else base.__name__
    return parents


def test_the_docstring_draws_the_real_tree() -> None:
    drawn = _drawn_parents()
    assert "WebhookPayloadError" in drawn and drawn["UntrustedTypeError"] == "ModelLoadError"
    assert drawn == _defined_parents()


def test_every_error_class_is_in_all() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, OpsloopError)
    }
    assert defined <= set(errors.__all__)


def test_every_error_of_the_package_is_defined_in_errors() -> None:
    # Every module imported, in a fresh process: a subclass of OpsloopError defined anywhere
    # else would not be drawn in the tree.
    code = (
        "import importlib, pkgutil, opsloop\n"
        "from opsloop.errors import OpsloopError\n"
        "for info in pkgutil.walk_packages(opsloop.__path__, 'opsloop.'):\n"
        "    if info.name != 'opsloop.__main__' and '.migrations' not in info.name:\n"
        "        importlib.import_module(info.name)\n"
        "seen, todo = [], [OpsloopError]\n"
        "while todo:\n"
        "    cls = todo.pop()\n"
        "    seen.append(cls)\n"
        "    todo.extend(cls.__subclasses__())\n"
        "print(len(seen))\n"
        "print(sorted(f'{c.__module__}.{c.__qualname__}' for c in seen\n"
        "             if c.__module__ != 'opsloop.errors'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, elsewhere = out.stdout.strip().splitlines()
    assert elsewhere == "[]"
    assert int(count) == len(_defined_parents())
