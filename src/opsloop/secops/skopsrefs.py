"""What a skops file names, read from its schema without loading anything.

A pure primitive shared by the registry's sklearn flavor (which checks every name against the
allow-list before loading) and the model scanner (which reports every name it would refuse).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from opsloop.errors import UnreadableSkopsFileError
from opsloop.secops.trust import TypeRef, Use

__all__ = ["UnreadableSkopsFileError", "is_skops_file", "skops_references"]


# skops loaders that rebuild an object of the named class: through ``__new__`` and its state
# (ObjectNode), with a constructor fixed by skops (TreeNode, QuantileForestNode), or by calling
# the class with the rebuilt content (containers, arrays). Every other loader hands the named
# object itself to the model, which may call it (FunctionNode, MethodNode, TypeNode …), or
# calls it with arguments from the file (ConstructorFromReduceNode, LossNode); a loader not
# known here is taken as that more dangerous kind.
_INSTANCE_LOADERS = frozenset(
    {
        "ObjectNode", "TreeNode", "QuantileForestNode", "DictNode", "DefaultDictNode",
        "ListNode", "SetNode", "TupleNode", "BytesNode", "BytearrayNode", "SliceNode",
        "JsonNode", "NdArrayNode", "MaskedArrayNode", "DTypeNode", "RandomStateNode",
        "RandomGeneratorNode", "SparseMatrixNode", "_DictWithDeprecatedKeysNode",
    }
)  # fmt: skip


def is_skops_file(data: bytes) -> bool:
    """Whether ``data`` is a zip archive holding a skops ``schema.json``."""
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def skops_references(data: bytes) -> list[TypeRef]:
    """Every type and function a skops file names; ``vouched`` where skops trusts it.

    Raises:
        UnreadableSkopsFileError: The bytes are not a skops file.
    """
    import skops.io as sio  # noqa: PLC0415 (skops loads scikit-learn: only when a file is read)

    try:
        untrusted = set(sio.get_untrusted_types(data=data))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except Exception as exc:
        # A file that is not a skops archive fails inside zipfile/json/skops' tree
        # builder with varied types (BadZipFile, KeyError, ValueError, RecursionError …).
        raise UnreadableSkopsFileError(f"{type(exc).__name__}: {exc}") from exc
    found = _schema_names(schema)
    refs: list[TypeRef] = []
    for name, (module, attr, uses) in sorted(found.items()):
        refs.append(
            TypeRef(
                name=name,
                uses=frozenset(uses) or frozenset({"callable"}),
                module=module,
                attr=attr,
                vouched=name not in untrusted,
            )
        )
    # skops reports a few names no node carries (a constructor it picks itself): those are
    # checked too, as the more dangerous kind.
    refs += [TypeRef(name=name) for name in sorted(untrusted - set(found))]
    return refs


def _schema_names(schema: Any) -> dict[str, tuple[str | None, str | None, set[Use]]]:
    """Every name a skops schema carries: name -> (module, attribute path, uses)."""
    found: dict[str, tuple[str | None, str | None, set[Use]]] = {}

    def note(name: str, module: str | None, attr: str | None, use: Use | None) -> None:
        entry = found.setdefault(name, (module, attr, set()))
        if use is not None:
            entry[2].add(use)

    # Iterative: a crafted schema can nest deeper than the recursion limit.
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        loader, module, cls = item.get("__loader__"), item.get("__module__"), item.get("__class__")
        if not (isinstance(loader, str) and isinstance(module, str) and isinstance(cls, str)):
            continue
        if loader == "CachedNode":
            # The same object as an earlier node, which says how it is used.
            note(f"{module}.{cls}", module, cls, None)
        elif loader == "MethodNode":
            note(f"{module}.{cls}", module, cls, "instance")
            content = item.get("content")
            func = content.get("func") if isinstance(content, dict) else None
            if isinstance(func, str):
                note(f"{module}.{cls}.{func}", module, f"{cls}.{func}", "callable")
        else:
            use: Use = "instance" if loader in _INSTANCE_LOADERS else "callable"
            note(f"{module}.{cls}", module, cls, use)
    return found
