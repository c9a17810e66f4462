"""Which types and functions a packaged model may make the loader import: the one allow-list.

Loading a model file imports every type and function it names and hands them to the model,
which may call them: ``FunctionTransformer(os.system)`` in a saved pipeline runs a shell
command on every prediction. So a model never vouches for its own content. What a model file
names is trusted when, and only when:

* it is not denied (:data:`DENIED_MODULES`, :data:`DENIED_NAMES`): a module or function that
  can run a process, open a file or import a module is refused whatever else says, matched on
  the name in the file and on the real module of the object it resolves to (``os.system`` is
  ``posix.system``, and a project function may be an alias of either);
* and it is trusted by a rule or by name: a scikit-learn estimator class (a subclass of
  ``sklearn.base.BaseEstimator`` defined in ``sklearn.*``), a numpy scalar, dtype or array
  class, a scipy sparse matrix class, or an entry of :data:`TRUSTED`; or the project trusts it
  explicitly (``security.trusted_types`` in ``opsloop.yaml``, or the ``trusted_types``
  argument of ``register_model`` / ``save_model`` / ``load_model``).

A function (or a method, or a class handed over to be called) is never trusted by a rule, only
by name: which functions are harmless cannot be told from their type.

What the serialization format itself trusts by default (for skops: scikit-learn estimators,
numpy and scipy ufuncs, builtin containers) is still checked against the denylist.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import re
import sys
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opsloop.errors import RegistryError, UntrustedTypeError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DENIED_MODULES",
    "DENIED_NAMES",
    "TRUSTED",
    "TypeRef",
    "Use",
    "Verdict",
    "check_extra_types",
    "check_types",
    "classify_types",
    "is_denied",
]

Use = Literal["instance", "callable"]
"""How a loaded model file uses a name: ``instance`` rebuilds an object of that class from
stored attributes; ``callable`` hands the object itself (a function, method or class) to the
model, which may call it with any arguments (skops' FunctionNode, MethodNode, TypeNode,
PartialNode, OperatorFuncNode, and ConstructorFromReduceNode, which calls it while loading)."""

_INSTANCE: frozenset[Use] = frozenset({"instance"})
_ANY: frozenset[Use] = frozenset({"instance", "callable"})

#: Types trusted by name, beyond the rules, with the uses they are trusted for. These are what
#: the project's own models need (the lifecycle's candidates, with the ``boost`` extra, behind
#: the preprocessing of ``opsloop.ml.features``) that the rules do not cover. The opsloop
#: flavors store no type of their own.
TRUSTED: Mapping[str, frozenset[Use]] = {
    # The fitted trees of random forests and histogram gradient boosting. skops leaves them
    # untrusted because scikit-learn does not bounds-check the node arrays inside (a crafted
    # file can crash the process, not run code); the registry's digests keep its copies as
    # they were saved.
    "sklearn.tree._tree.Tree": _INSTANCE,
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": _INSTANCE,
    "collections.OrderedDict": _ANY,
    # LightGBM and XGBoost estimators rebuild their booster from a model string held in the
    # file. Only as instances: called with arguments, a Booster reads the model file it is
    # given a path to.
    "lightgbm.basic.Booster": _INSTANCE,
    "lightgbm.sklearn.LGBMClassifier": _INSTANCE,
    "lightgbm.sklearn.LGBMRegressor": _INSTANCE,
    "xgboost.core.Booster": _INSTANCE,
    "xgboost.sklearn.XGBClassifier": _INSTANCE,
    "xgboost.sklearn.XGBRegressor": _INSTANCE,
}

#: Modules (and their submodules) none of whose members may ever be trusted: they run
#: processes, open files or sockets, import or compile code, or reach into the interpreter.
DENIED_MODULES: frozenset[str] = frozenset(
    {
        # processes, the interpreter, native code
        "os", "posix", "nt", "posixpath", "ntpath", "genericpath", "subprocess",
        "_posixsubprocess", "multiprocessing", "concurrent", "threading", "_thread", "signal",
        "sys", "ctypes", "_ctypes", "cffi", "pty", "tty", "termios", "fcntl", "resource",
        "gc", "inspect", "atexit", "platform", "sysconfig", "site", "webbrowser", "asyncio",
        # importing, compiling and running code
        "importlib", "_imp", "imp", "zipimport", "pkgutil", "runpy", "code", "codeop", "ast",
        "types", "functools", "pdb", "bdb", "trace", "timeit", "doctest", "pydoc", "unittest",
        "__main__",
        # deserializers that run code
        "pickle", "_pickle", "pickletools", "copyreg", "shelve", "marshal", "dill",
        "cloudpickle", "joblib", "yaml",
        # files, archives, sockets and the network
        "io", "_io", "_pyio", "pathlib", "tempfile", "shutil", "glob", "fileinput",
        "filecmp", "codecs", "mmap", "tarfile", "zipfile", "gzip", "bz2", "lzma", "sqlite3",
        "dbm", "logging", "socket", "_socket", "ssl", "select", "selectors", "socketserver",
        "urllib", "http", "ftplib", "smtplib", "poplib", "imaplib", "xmlrpc", "requests",
        "httpx", "fsspec", "s3fs", "boto3", "botocore",
        # the file readers and writers of the libraries models are built on
        "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.testing", "numpy.lib.npyio",
        "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._datasource", "pandas.io",
        "scipy.io", "scipy._lib._ccallback", "sklearn.datasets", "sklearn.utils._joblib",
        "sklearn.externals",
    }
)  # fmt: skip

#: Names (shell-style patterns, ``*`` spans dots) that may never be trusted although their
#: module may be: builtins that evaluate, import or open; getters that reach any attribute;
#: numpy and pandas functions and methods that read or write files.
DENIED_NAMES: tuple[str, ...] = (
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.globals",
    "builtins.locals", "builtins.vars", "builtins.input", "builtins.breakpoint",
    "builtins.help", "builtins.exit", "builtins.quit",
    "operator.attrgetter", "operator.methodcaller", "operator.call",
    "numpy.load", "numpy.save*", "numpy.fromfile", "numpy.loadtxt", "numpy.genfromtxt",
    "numpy.fromregex", "numpy.memmap", "numpy.*.memmap", "numpy.DataSource", "numpy.*.tofile",
    "numpy.*.dump", "pandas.read_*", "pandas.*.read_*", "pandas.to_pickle", "pandas.eval",
    "pandas.*.eval", "pandas.*.query", "pandas.ExcelWriter", "pandas.HDFStore",
    "pandas.*.to_pickle", "pandas.*.to_csv", "pandas.*.to_parquet", "pandas.*.to_feather",
    "pandas.*.to_hdf", "pandas.*.to_sql", "pandas.*.to_excel", "pandas.*.to_json",
    "pandas.*.to_stata", "pandas.*.to_orc", "pandas.*.to_clipboard", "pandas.*.to_html",
    "pandas.*.to_latex", "pandas.*.to_markdown", "pandas.*.to_xml", "pandas.*.to_string",
    "*.load_model", "*.save_model",
)  # fmt: skip

# Libraries whose classes the rules may trust: only these are imported to evaluate a rule, so a
# model file cannot make the check import an arbitrary module.
_RULE_ROOTS = frozenset({"sklearn", "numpy", "scipy"})
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_HINT = (
    "to trust a type, list it under 'security: {trusted_types: [...]}' in opsloop.yaml or "
    "pass trusted_types=[...] to register_model, save_model or load_model; types that run "
    "processes, open files or import modules can never be trusted"
)


@dataclass(frozen=True)
class TypeRef:
    """A type or function that loading a model file imports.

    Attributes:
        name: Dotted name, as the format reports it (``posix.system``,
            ``sklearn.preprocessing._data.StandardScaler.transform`` for a method).
        uses: How the file uses it (see :data:`Use`).
        module: The module the loader imports it from, when the file says.
        attr: The attribute path inside ``module``.
        vouched: The format trusts it by default (then only the denylist applies).
    """

    name: str
    uses: frozenset[Use] = field(default=frozenset({"callable"}))
    module: str | None = None
    attr: str | None = None
    vouched: bool = False


def is_denied(name: str) -> bool:
    """Whether ``name`` (a dotted name) falls under the denylist."""
    parts = name.split(".")
    # Dunder names reach into the interpreter (__import__, __globals__, __reduce__, …);
    # classes defined in a script (__main__) cannot be imported anywhere else anyway.
    if any(p.startswith("__") and p.endswith("__") for p in parts):
        return True
    if any(".".join(parts[:i]) in DENIED_MODULES for i in range(1, len(parts) + 1)):
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DENIED_NAMES)


def check_extra_types(names: Iterable[object], *, source: str) -> list[str]:
    """Validate types a project or a caller trusts explicitly; return them sorted, unique.

    Args:
        names: The dotted type or function names.
        source: Where they come from, for messages (``opsloop.yaml: security.trusted_types``).

    Raises:
        RegistryError: An entry is not a dotted name.
        UntrustedTypeError: An entry can never be trusted (every such entry is named).
    """
    checked: set[str] = set()
    denied: list[str] = []
    for name in names:
        if not isinstance(name, str) or not _DOTTED.fullmatch(name):
            raise RegistryError(
                f"{source}: {name!r} is not a dotted type name such as 'mypkg.module.MyClass'"
            )
        if is_denied(name):
            denied.append(name)
        checked.add(name)
    if denied:
        raise UntrustedTypeError(
            f"{source}: {', '.join(_shown(denied))} can never be trusted: what can run a "
            "process, open a file or import a module is refused whatever trusts it",
            hint="remove them; a model that needs them cannot be served safely",
        )
    return sorted(checked)


def check_types(refs: Iterable[TypeRef], *, where: str, extra: Sequence[str] = ()) -> list[str]:
    """Refuse a model file that names anything not trusted; return the extra types it uses.

    Args:
        refs: What the model file names (from its flavor).
        where: The model file, for messages.
        extra: Types trusted explicitly for this model (already checked with
            :func:`check_extra_types`).

    Returns:
        The entries of ``extra`` that the file needs (sorted), to record.

    Raises:
        UntrustedTypeError: Something named is denied or not trusted (every one is named).
    """
    verdicts = classify_types(refs, extra=extra)
    denied = {name for name, v in verdicts.items() if v == "denied"}
    untrusted = {name for name, v in verdicts.items() if v == "untrusted"}
    used = {name for name, v in verdicts.items() if v == "extra"}
    if denied or untrusted:
        parts = []
        if untrusted:
            parts.append(f"types that are not trusted: {', '.join(_shown(untrusted))}")
        if denied:
            parts.append(f"types that can never be trusted: {', '.join(_shown(denied))}")
        raise UntrustedTypeError(f"{where} holds {'; and '.join(parts)}", hint=_HINT)
    return sorted(used)


Verdict = Literal["denied", "untrusted", "extra", "trusted"]
"""What the rules say of one name: ``denied`` (never trustable), ``untrusted`` (not trusted),
``extra`` (trusted only by an explicit list), ``trusted`` (by the format, a rule or by name)."""


def classify_types(refs: Iterable[TypeRef], *, extra: Sequence[str] = ()) -> dict[str, Verdict]:
    """The verdict of the allow-list and the denylist on every name a model file uses.

    :func:`check_types` refuses a file on these verdicts; a scanner reports them one by one.

    Args:
        refs: What the model file names (from its flavor).
        extra: Types trusted explicitly for this model (already checked with
            :func:`check_extra_types`).

    Returns:
        Name -> verdict; a name used several times gets its worst verdict.
    """
    allowed_extra = set(extra)
    verdicts: dict[str, Verdict] = {}
    rank = {"denied": 3, "untrusted": 2, "extra": 1, "trusted": 0}

    def put(name: str, verdict: Verdict) -> None:
        if rank[verdict] >= rank[verdicts.get(name, "trusted")]:
            verdicts[name] = verdict

    for ref in refs:
        if is_denied(ref.name) or (ref.module is not None and is_denied(ref.module)):
            put(ref.name, "denied")
            continue
        if ref.vouched:
            put(ref.name, "trusted")
            continue
        explicit = ref.name in allowed_extra
        listed = ref.uses <= TRUSTED.get(ref.name, frozenset())
        ruled = not explicit and not listed and _root(ref) in _RULE_ROOTS
        if not (explicit or listed or ruled):
            put(ref.name, "untrusted")
            continue
        obj = _resolve(ref)
        if obj is not _MISSING and any(is_denied(n) for n in _real_names(obj)):
            put(ref.name, "denied")
        elif ruled and (obj is _MISSING or not _by_rule(obj, ref.uses)):
            put(ref.name, "untrusted")
        elif explicit and not listed:
            put(ref.name, "extra")
        else:
            put(ref.name, "trusted")
    return verdicts


# -- resolving names to objects -------------------------------------------------------------

_MISSING: Any = object()


def _root(ref: TypeRef) -> str:
    return (ref.module or ref.name).split(".", 1)[0]


def _resolve(ref: TypeRef) -> Any:
    """The object ``ref`` names, imported as the loader would; _MISSING when it cannot be."""
    candidates: list[tuple[str, list[str]]] = []
    if ref.module is not None and ref.attr is not None:
        candidates.append((ref.module, ref.attr.split(".")))
    parts = ref.name.split(".")
    candidates += [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    for module_name, attrs in candidates:
        try:
            obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
            for attr in attrs:
                obj = getattr(obj, attr)
        except Exception:
            # An import can fail in many ways (missing module, a library's own import error);
            # the next split of the name is tried, and loading reports the real failure.
            continue
        return obj
    return _MISSING


def _real_names(obj: Any) -> list[str]:
    """Dotted names of where ``obj`` really lives: itself, its owner, its bases, what it wraps."""
    names: list[str] = []
    seen: set[int] = set()

    def add(o: Any, depth: int = 0) -> None:
        if id(o) in seen or depth > 4:
            return
        seen.add(id(o))
        if isinstance(o, types.ModuleType):
            names.append(o.__name__)
            return
        module = getattr(o, "__module__", None)
        qualname = getattr(o, "__qualname__", None) or getattr(o, "__name__", None)
        if isinstance(module, str):
            names.append(f"{module}.{qualname}" if isinstance(qualname, str) else module)
        owner = getattr(o, "__self__", None)
        if owner is not None:
            add(owner if isinstance(owner, types.ModuleType | type) else type(owner), depth + 1)
        if isinstance(o, type):
            for base in o.__mro__[1:]:
                names.append(f"{base.__module__}.{base.__qualname__}")
        elif not isinstance(o, types.FunctionType | types.BuiltinFunctionType):
            # An instance posing as a function (functools.partial, a callable object).
            add(type(o), depth + 1)
        if isinstance(o, functools.partial):
            add(o.func, depth + 1)
        wrapped = getattr(o, "__wrapped__", None)
        if wrapped is not None:
            add(wrapped, depth + 1)

    add(obj)
    return names


def _by_rule(obj: Any, uses: frozenset[Use]) -> bool:
    """Whether a rule trusts the class ``obj`` for ``uses``."""
    if not isinstance(obj, type):
        return False
    module = obj.__module__
    if module.startswith("sklearn."):
        # Lazy imports here and below: each library loads only when a rule names its class.
        from sklearn.base import BaseEstimator  # noqa: PLC0415

        return issubclass(obj, BaseEstimator)
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np  # noqa: PLC0415

        if issubclass(obj, np.generic | np.dtype):
            return True
        return issubclass(obj, np.ndarray) and uses <= _INSTANCE
    if module.startswith("scipy.sparse"):
        import scipy.sparse as sp  # noqa: PLC0415

        return issubclass(obj, sp.spmatrix | sp.sparray) and uses <= _INSTANCE
    return False


def _shown(names: Iterable[str]) -> list[str]:
    # Names come from the model file: show odd ones quoted so a newline cannot split the line.
    return [n if _DOTTED.fullmatch(n) else repr(n) for n in sorted(names)]
