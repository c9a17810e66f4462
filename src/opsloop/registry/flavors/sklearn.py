"""scikit-learn estimators and pipelines, stored with skops (no pickle on the load path).

Estimators from other libraries that follow the scikit-learn API (LightGBM, XGBoost …) are
accepted too. What a file may name is decided by :mod:`opsloop.registry.trust`, never by the
file: this flavor only reports every type and function a skops file names, and how the
loader would use it.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from opsloop.errors import ModelLoadError, RegistryError, UntrustedTypeError
from opsloop.registry.trust import TypeRef, Use

__all__ = ["SklearnFlavor"]

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


class SklearnFlavor:
    """Fitted scikit-learn-compatible estimators in the skops format (``model.skops``)."""

    name = "sklearn"
    model_file = "model.skops"

    def accepts(self, model: Any) -> bool:
        """Whether ``model`` is a scikit-learn estimator (or follows its base class)."""
        # Lazy imports here and below (noqa: PLC0415) of sklearn, skops: each loads only where it is
        # used, so importing this module stays light.
        from sklearn.base import BaseEstimator  # noqa: PLC0415

        return isinstance(model, BaseEstimator)

    def dump(self, model: Any) -> bytes:
        """Serialize a fitted estimator with skops.

        Raises:
            RegistryError: The estimator is not fitted, or skops cannot serialize it.
        """
        import skops.io as sio  # noqa: PLC0415
        from sklearn.exceptions import NotFittedError  # noqa: PLC0415
        from sklearn.utils.validation import check_is_fitted  # noqa: PLC0415

        try:
            check_is_fitted(model)
        except NotFittedError:
            raise RegistryError(
                f"{type(model).__name__} is not fitted; fit it before saving it"
            ) from None
        except TypeError as exc:
            raise RegistryError(f"cannot package {type(model).__name__}: {exc}") from exc
        try:
            data: bytes = sio.dumps(model)
        except Exception as exc:
            # skops raises many types (TypeError, UnsupportedTypeException, …) for objects
            # it cannot represent; the user needs the cause, not the type.
            raise RegistryError(
                f"skops cannot serialize {type(model).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
        return data

    def references(self, data: bytes) -> list[TypeRef]:
        """Every type and function a skops file names; ``vouched`` where skops trusts it.

        Raises:
            ModelLoadError: The bytes are not a skops file.
        """
        import skops.io as sio  # noqa: PLC0415

        try:
            untrusted = set(sio.get_untrusted_types(data=data))
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                schema = json.loads(archive.read("schema.json"))
        except Exception as exc:
            # A file that is not a skops archive fails inside zipfile/json/skops' tree
            # builder with varied types (BadZipFile, KeyError, ValueError, RecursionError …).
            raise ModelLoadError(
                f"{self.model_file} is not a readable skops file: {type(exc).__name__}: {exc}"
            ) from exc
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

    def load(self, data: bytes, trusted: list[str]) -> Any:
        """Load a skops file trusting exactly ``trusted`` beyond skops' defaults.

        Raises:
            UntrustedTypeError: The file holds a type outside ``trusted``.
            ModelLoadError: The file cannot be loaded (a module or class is missing).
        """
        import skops.io as sio  # noqa: PLC0415
        from skops.io.exceptions import UntrustedTypesFoundException  # noqa: PLC0415

        try:
            return sio.loads(data, trusted=list(trusted))
        except UntrustedTypesFoundException as exc:
            raise UntrustedTypeError(f"{self.model_file}: {exc}") from exc
        except Exception as exc:
            # Missing modules or attributes (a class defined in a script, a library not
            # installed) surface as ImportError/AttributeError from skops' object loader.
            raise ModelLoadError(
                f"cannot load {self.model_file}: {type(exc).__name__}: {exc}",
                hint="install the packages the model was trained with, and define custom "
                "classes in an importable module rather than a script or notebook",
            ) from exc


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
