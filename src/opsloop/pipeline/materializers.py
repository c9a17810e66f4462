"""Materializers: how step outputs become artifacts and are read back.

Every output is stored as a folder artifact holding the materializer's files plus
``opsloop-materializer.json`` (materializer name, version and the Python type), so a digest
alone is enough to load the value again. Built in:

============================  =========================  ===================================
type                          materializer               files
============================  =========================  ===================================
``pandas.DataFrame``          ``pandas.parquet``         ``data.parquet``
``numpy.ndarray``             ``numpy.npy``              ``data.npy`` (``allow_pickle=False``)
dict/list/str/int/float/bool  ``json``                   ``data.json``
/None
scikit-learn estimators       ``sklearn.skops``          ``model.skops`` (allow-listed types)
============================  =========================  ===================================

Nothing is ever pickled. Users add their own with :func:`register_materializer`; the
materializer for a value is the one registered for the most specific class in the value's
MRO (the latest registration wins for one class).
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsloop.errors import MaterializerError, OpsloopError

if TYPE_CHECKING:
    from opsloop.artifacts import ArtifactStore

__all__ = [
    "META_FILE",
    "JSONMaterializer",
    "Materializer",
    "NumpyMaterializer",
    "PandasMaterializer",
    "SklearnMaterializer",
    "load_value",
    "materializer_for",
    "materializer_versions",
    "register_materializer",
    "registered_materializers",
    "save_value",
    "unregister_materializer",
]

META_FILE = "opsloop-materializer.json"


class Materializer(ABC):
    """Stores values of some types in a folder and reads them back.

    Subclasses set ``name`` (unique), ``version`` (bump it when the file format changes: it is
    part of every step's cache key) and ``types``, or override :meth:`handled_types` to resolve
    types lazily (so that a library is not imported just to ask).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    types: ClassVar[tuple[type, ...]] = ()

    @classmethod
    def handled_types(cls) -> tuple[type, ...]:
        """The classes this materializer stores (instances of subclasses too)."""
        return cls.types

    @abstractmethod
    def save(self, value: Any, folder: Path) -> None:
        """Write ``value`` into the empty folder ``folder``."""

    @abstractmethod
    def load(self, folder: Path) -> Any:
        """Read the value back from ``folder``."""


_REGISTRY: list[type[Materializer]] = []


def register_materializer(cls: type[Materializer]) -> type[Materializer]:
    """Register a materializer class (usable as a decorator).

    A class registered under a name already taken replaces the earlier one.
    """
    if not (isinstance(cls, type) and issubclass(cls, Materializer)):
        raise MaterializerError(f"{cls!r} is not a Materializer subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise MaterializerError(f"materializer {cls.__qualname__} has no 'name'")
    unregister_materializer(name)
    _REGISTRY.append(cls)
    return cls


def unregister_materializer(name: str) -> None:
    """Remove the materializer registered as ``name``, if any."""
    _REGISTRY[:] = [c for c in _REGISTRY if c.name != name]


def registered_materializers() -> list[type[Materializer]]:
    """The registered materializer classes, oldest registration first."""
    return list(_REGISTRY)


def materializer_versions() -> list[str]:
    """``name@version`` of every registered materializer (part of every cache key)."""
    return sorted(f"{c.name}@{c.version}" for c in _REGISTRY)


def materializer_for(cls: type) -> type[Materializer] | None:
    """The materializer for values of class ``cls``: most specific class first."""
    for klass in cls.__mro__:
        for mat in reversed(_REGISTRY):
            if klass in mat.handled_types():
                return mat
    return None


def _by_name(name: str) -> type[Materializer] | None:
    for mat in reversed(_REGISTRY):
        if mat.name == name:
            return mat
    return None


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def save_value(value: Any, artifacts: ArtifactStore, *, step: str = "", output: str = "") -> str:
    """Store ``value`` with its materializer and return the folder artifact's digest.

    Args:
        value: The value to store.
        artifacts: Where to put it.
        step: Name of the step that produced it (for messages).
        output: Name of the output (for messages).

    Raises:
        MaterializerError: No materializer handles the type, or it failed.
    """
    where = f"output '{output}' of step '{step}'" if step else "value"
    mat = materializer_for(type(value))
    if mat is None:
        raise MaterializerError(
            f"{where} is a {_type_name(type(value))}, which no materializer can store",
            hint="return a DataFrame, a numpy array, a JSON value or a scikit-learn estimator, "
            "or register a materializer with opsloop.pipeline.register_materializer",
        )
    with tempfile.TemporaryDirectory(prefix="opsloop-out-") as tmp:
        folder = Path(tmp)
        try:
            mat().save(value, folder)
        except OpsloopError as exc:
            raise MaterializerError(
                f"{where} ({_type_name(type(value))}) cannot be stored by '{mat.name}': {exc}",
                hint=exc.hint,
            ) from exc
        except Exception as exc:
            raise MaterializerError(
                f"{where} ({_type_name(type(value))}) cannot be stored by '{mat.name}': "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        meta = {"materializer": mat.name, "version": mat.version, "type": _type_name(type(value))}
        (folder / META_FILE).write_text(json.dumps(meta, sort_keys=True))
        return artifacts.put_dir(folder)


def load_value(digest: str, artifacts: ArtifactStore) -> Any:
    """Load the value stored by :func:`save_value` under ``digest``.

    Raises:
        MaterializerError: The artifact is not a step output, or its materializer is not
            registered, is older than the one that wrote it, or failed.
    """
    manifest = artifacts.get_manifest(digest)
    if META_FILE not in manifest.files:
        raise MaterializerError(f"artifact {digest} is not a step output (no {META_FILE})")
    with tempfile.TemporaryDirectory(prefix="opsloop-in-") as tmp:
        folder = artifacts.get_dir(digest, Path(tmp))
        try:
            meta = json.loads((folder / META_FILE).read_text())
            name, version = str(meta["materializer"]), int(meta["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MaterializerError(f"artifact {digest}: unreadable {META_FILE}: {exc}") from exc
        mat = _by_name(name)
        if mat is None:
            raise MaterializerError(
                f"artifact {digest} was written by materializer '{name}', which is not registered",
                hint="import the module that registers it before loading",
            )
        if version > mat.version:
            raise MaterializerError(
                f"artifact {digest} was written by '{name}' version {version}, newer than the "
                f"installed version {mat.version}"
            )
        (folder / META_FILE).unlink()
        try:
            return mat().load(folder)
        except OpsloopError as exc:
            raise MaterializerError(f"artifact {digest} ({name}): {exc}") from exc
        except Exception as exc:
            raise MaterializerError(
                f"artifact {digest} cannot be loaded by '{name}': {type(exc).__name__}: {exc}"
            ) from exc


# -- built-in materializers ---------------------------------------------------------------


def _check_json(value: Any, path: str) -> None:
    # json.dumps would silently turn tuples into lists and int keys into strings; a value that
    # does not come back equal is refused instead.
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise MaterializerError(f"{path} has a non-string key {k!r}")
            _check_json(item, f"{path}[{k!r}]")
        return
    raise MaterializerError(f"{path} is a {_type_name(type(value))}, which is not a JSON value")


class JSONMaterializer(Materializer):
    """JSON values: dict (string keys), list, str, int, float, bool, None."""

    name = "json"
    version = 1
    types = (dict, list, str, int, float, bool, type(None))

    def save(self, value: Any, folder: Path) -> None:
        _check_json(value, "value")
        (folder / "data.json").write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")

    def load(self, folder: Path) -> Any:
        return json.loads((folder / "data.json").read_text(encoding="utf-8"))


class PandasMaterializer(Materializer):
    """pandas DataFrames as Parquet (index and dtypes kept by pyarrow)."""

    name = "pandas.parquet"
    version = 1

    @classmethod
    def handled_types(cls) -> tuple[type, ...]:
        pd = sys.modules.get("pandas")
        return () if pd is None else (pd.DataFrame,)

    def save(self, value: Any, folder: Path) -> None:
        value.to_parquet(folder / "data.parquet", engine="pyarrow")

    def load(self, folder: Path) -> Any:
        pd: Any = importlib.import_module("pandas")
        return pd.read_parquet(folder / "data.parquet", engine="pyarrow")


class NumpyMaterializer(Materializer):
    """numpy arrays as ``.npy``; object arrays are refused (they would need pickle)."""

    name = "numpy.npy"
    version = 1

    @classmethod
    def handled_types(cls) -> tuple[type, ...]:
        np = sys.modules.get("numpy")
        return () if np is None else (np.ndarray,)

    def save(self, value: Any, folder: Path) -> None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.registry, numpy, skops: each loads
        # only where it is used, so importing this module stays light.
        import numpy as np  # noqa: PLC0415

        np.save(folder / "data.npy", value, allow_pickle=False)

    def load(self, folder: Path) -> Any:
        import numpy as np  # noqa: PLC0415

        return np.load(folder / "data.npy", allow_pickle=False)


class SklearnMaterializer(Materializer):
    """scikit-learn estimators with skops.

    What the file may name is decided by the registry's one allow-list
    (:mod:`opsloop.registry.trust`) plus the project's ``security.trusted_types``, on save and
    again on load, never by the file: a cached output in a shared artifact store is checked
    like a registered model.
    """

    name = "sklearn.skops"
    version = 2

    @classmethod
    def handled_types(cls) -> tuple[type, ...]:
        base = sys.modules.get("sklearn.base")
        return () if base is None else (base.BaseEstimator,)

    def save(self, value: Any, folder: Path) -> None:
        import skops.io as sio  # noqa: PLC0415

        data = sio.dumps(value)
        _checked_names(data, f"the step output {type(value).__name__}")
        (folder / "model.skops").write_bytes(data)

    def load(self, folder: Path) -> Any:
        path = folder / "model.skops"
        data = path.read_bytes()
        trusted = _checked_names(data, str(path))
        # Lazy: the registry's packaging imports pandas, which a pipeline without estimators
        # never needs.
        from opsloop.registry.flavors.sklearn import SklearnFlavor  # noqa: PLC0415

        try:
            return SklearnFlavor().load(data, trusted)
        except OpsloopError as exc:
            raise MaterializerError(exc.message, hint=exc.hint) from exc


def _checked_names(data: bytes, where: str) -> list[str]:
    """Refuse a skops file naming anything the allow-list and the project do not trust;
    return the names its loader must be told to trust."""
    # Lazy, as in SklearnMaterializer.load.
    from opsloop.registry.flavors.sklearn import SklearnFlavor  # noqa: PLC0415
    from opsloop.registry.packaging import declared_trusted_types  # noqa: PLC0415
    from opsloop.registry.trust import check_types  # noqa: PLC0415

    try:
        refs = SklearnFlavor().references(data)
        check_types(refs, where=where, extra=sorted(declared_trusted_types(None)))
    except OpsloopError as exc:
        raise MaterializerError(exc.message, hint=exc.hint) from exc
    return sorted({r.name for r in refs if not r.vouched})


for _cls in (JSONMaterializer, NumpyMaterializer, PandasMaterializer, SklearnMaterializer):
    register_materializer(_cls)
