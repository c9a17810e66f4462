"""Cache keys of pipeline steps.

A step run is reused when its cache key matches one of an earlier run that succeeded. The key
is the SHA-256 of everything that decides what the step produces: its code (see below), its
parameters (canonical JSON), the digests of its inputs, the names of its outputs and the
versions of the materializers that store them.

The code of a step is its normalised source plus, transitively, the project code it uses:

* functions and classes reached through the global names its code reads (nested functions,
  lambdas and comprehensions included), through attributes of project modules it names
  (``helpers.clean(df)``), through closures and default values, and through ``__wrapped__``
  of decorated helpers; for a class, its source and the code of its methods and of its
  project base classes;
* simple module-level constants it reads (numbers, strings, bytes, booleans, ``None`` and
  tuples or frozensets of those), by value, so ``THRESHOLD = 0.5`` → ``0.6`` misses the cache;
* the opsloop version, which stands for opsloop's own code.

Project code is code defined outside the standard library, outside every ``site-packages`` or
``dist-packages`` directory and outside opsloop. Library code is not followed: its version
changes with an install, which the key does not see — run with ``no_cache=True`` after
upgrading a library a step depends on. Neither are values that are not simple constants
(lists, dicts; of an instance only its class is followed), names a function assigns with
``global`` (state, not code), nor modules imported inside a function body.

Source normalisation parses the code and dumps its syntax tree without docstrings, so editing
a comment, a docstring or the formatting of a step or of a helper keeps the cache, while any
change of behaviour misses it. The step's own decorators (the ``@step(...)`` options, such as
retries) are dropped too; a helper's decorators are kept, as they change what it does. Code
without readable source falls back to its compiled form, which is stable for one Python
version.
"""

from __future__ import annotations

import ast
import dis
import functools
import hashlib
import importlib
import inspect
import json
import marshal
import os
import site
import sys
import sysconfig
import textwrap
import weakref
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

from opsloop.errors import PipelineError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

KEY_VERSION = "opsloop.step-cache/v1"

# The label of the step's own code among the parts of its source digest: moving or renaming a
# step does not change what it computes.
_STEP_LABEL = "<step>"
_MISSING = object()


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _normalized(source: str, edit: Callable[[ast.Module], None]) -> str:
    """The syntax tree of ``source`` after ``edit``, dumped without positions (so comments and
    formatting do not count); code that cannot be parsed is kept verbatim (dedented)."""
    text = textwrap.dedent(source)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    edit(tree)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _drop_step_decorators_and_docstring(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
            if len(node.body) > 1 and _is_docstring(node.body[0]):
                node.body = node.body[1:]
            break


def _drop_docstrings(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]


def normalize_source(source: str) -> str:
    """The source of a function, reduced to what decides its behaviour.

    Decorators, the docstring, comments and formatting are dropped; code that cannot be parsed
    is kept verbatim (dedented).
    """
    return _normalized(source, _drop_step_decorators_and_docstring)


def _normalize_helper_source(source: str) -> str:
    """The source of a helper function or class without comments, formatting and docstrings.

    Unlike :func:`normalize_source`, decorators are kept (they change what a helper does) and
    every docstring goes, of nested functions and methods too.
    """
    return _normalized(source, _drop_docstrings)


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@functools.lru_cache(maxsize=8192)
def _code_digest(code: CodeType, filename: str, qualname: str, step: bool) -> str:
    """Digest of one code object's normalised source (its compiled form without source).

    Cached: a code object never changes, and equal code objects behave alike. ``filename``
    and ``qualname`` only keep equal code from different places apart.
    """
    try:
        source = inspect.getsource(code)
    except (OSError, TypeError):
        return _sha256(marshal.dumps(code))
    text = normalize_source(source) if step else _normalize_helper_source(source)
    return _sha256(text.encode())


_STORE_GLOBAL = dis.opmap["STORE_GLOBAL"]
_DELETE_GLOBAL = dis.opmap["DELETE_GLOBAL"]


@functools.lru_cache(maxsize=8192)
def _code_names(code: CodeType) -> tuple[str, ...]:
    """The names ``code`` and the code nested in it use, less the globals it assigns."""
    names: set[str] = set()
    assigned: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        names.update(current.co_names)
        # Code units are two bytes, the opcode first: decode only code that may assign.
        opcodes = current.co_code[::2]
        if _STORE_GLOBAL in opcodes or _DELETE_GLOBAL in opcodes:
            assigned.update(
                str(ins.argval)
                for ins in dis.get_instructions(current)
                if ins.opcode in (_STORE_GLOBAL, _DELETE_GLOBAL)
            )
        pending.extend(c for c in current.co_consts if isinstance(c, CodeType))
    return tuple(sorted(names - assigned))


_CLASS_DIGESTS: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _class_digest(cls: type) -> str:
    """Digest of a class's normalised source ("" when it has none), cached per class."""
    found = _CLASS_DIGESTS.get(cls)
    if found is None:
        try:
            found = _sha256(_normalize_helper_source(inspect.getsource(cls)).encode())
        except (OSError, TypeError):
            found = ""
        _CLASS_DIGESTS[cls] = found
    return found


def _constant_text(value: Any) -> str | None:
    """A deterministic text of a simple constant, ``None`` for any other value."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes):
        return repr(value)
    if kind is tuple or kind is frozenset:
        parts = [_constant_text(v) for v in value]
        if any(p is None for p in parts):
            return None
        if kind is frozenset:
            parts.sort()
        return f"{kind.__name__}({','.join(p for p in parts if p is not None)})"
    return None


# -- what counts as project code ------------------------------------------------------------


def _normpath(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """The standard library, every site-packages directory and the opsloop package."""
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    # The opsloop package: the folder above this module's.
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return tuple(sorted({_normpath(d) for d in dirs if d}))


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    if filename.startswith("<"):
        # "<frozen ...>" is the standard library; "<string>", "<stdin>" and the like are code
        # compiled at run time, decided by their module.
        return filename.startswith("<frozen")
    path = _normpath(filename)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return any(path.startswith(d + os.sep) for d in _library_dirs())


def _is_opsloop(name: str) -> bool:
    return name == "opsloop" or name.startswith("opsloop.")


def _is_project_module(module: ModuleType) -> bool:
    name = getattr(module, "__name__", "")
    if not isinstance(name, str) or _is_opsloop(name) or name in sys.builtin_module_names:
        return False
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        return not _is_library_file(file)
    # No file: a module made at run time (an interactive session) unless built in or frozen.
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    return origin not in ("built-in", "frozen")


def _module_verdict(name: Any) -> bool | None:
    """Whether the module named ``name`` is project code; ``None`` when it is not loaded."""
    if not isinstance(name, str):
        return None
    if _is_opsloop(name):
        return False
    module = sys.modules.get(name)
    return None if module is None else _is_project_module(module)


def _is_project_function(func: FunctionType) -> bool:
    verdict = _module_verdict(func.__module__)
    if verdict is False:
        return False
    filename = func.__code__.co_filename
    if filename.startswith("<") and not filename.startswith("<frozen"):
        return True
    return not _is_library_file(filename)


def _is_project_class(cls: type) -> bool:
    verdict = _module_verdict(cls.__module__)
    if verdict is not None:
        return verdict
    for attr in vars(cls).values():
        if isinstance(attr, FunctionType):
            return _is_project_function(attr)
    return False


# -- the walk over the code a step uses -----------------------------------------------------


def _module_label(name: Any) -> str:
    # A spawned worker imports the main script as "__mp_main__": the same code.
    return "__main__" if name == "__mp_main__" else str(name)


def _label(obj: Any) -> str:
    module = _module_label(getattr(obj, "__module__", "?"))
    return f"{module}.{getattr(obj, '__qualname__', '?')}"


class _FunctionFacts:
    """What a walk needs of a function that does not change while its code stays the same."""

    __slots__ = ("code", "digest", "label", "names", "project")

    def __init__(self, func: FunctionType) -> None:
        code = func.__code__
        self.code = code
        self.label = _label(func)
        self.names = _code_names(code)
        self.project = _is_project_function(func)
        self.digest = _code_digest(code, code.co_filename, code.co_qualname, False)


_FUNCTION_FACTS: weakref.WeakKeyDictionary[FunctionType, _FunctionFacts] = (
    weakref.WeakKeyDictionary()
)


def _function_facts(func: FunctionType) -> _FunctionFacts:
    facts = _FUNCTION_FACTS.get(func)
    if facts is None or facts.code is not func.__code__:
        facts = _FUNCTION_FACTS[func] = _FunctionFacts(func)
    return facts


_STEP_TYPE: type[Any] | None = None


def _step_type() -> type[Any]:
    """The ``Step`` class, imported when first needed (``step.py`` imports this module).

    Imported by name, not with an import statement: the package exports a function called
    ``step``, which a statement naming the submodule would shadow for the type checker.
    """
    global _STEP_TYPE
    if _STEP_TYPE is None:
        _STEP_TYPE = importlib.import_module("opsloop.pipeline.step").Step
    return _STEP_TYPE


class _CodeWalk:
    """Collects ``(label, digest)`` parts of the code reachable from a step function."""

    def __init__(self) -> None:
        self.parts: set[tuple[str, str]] = set()
        # id -> object, holding the objects so that their ids stay unique during the walk
        self.seen: dict[int, Any] = {}
        self.modules: set[tuple[int, tuple[str, ...]]] = set()
        self.pending: list[Any] = []

    def run(self) -> None:
        while self.pending:
            obj = self.pending.pop()
            if isinstance(obj, type):
                self._visit_class(obj)
            else:
                self._visit_function(obj)

    def add_step(self, func: Callable[..., Any], label: str) -> None:
        """The function of a step: its source without decorators, its wrappers, what it uses."""
        chain = _wrapped_chain(func)
        functions = [f for f in chain if isinstance(f, FunctionType)]
        if not functions:
            self.parts.add((label, _foreign_digest(func)))
            return
        inner = functions[-1]
        if id(inner) in self.seen:
            return
        self.seen[id(inner)] = inner
        code = inner.__code__
        self.parts.add((label, _code_digest(code, code.co_filename, code.co_qualname, True)))
        self._references(inner, _function_facts(inner))
        for wrapper in functions[:-1]:
            self.add_value(wrapper, label, "", ())

    def add_value(self, value: Any, owner: str, key: str, names: tuple[str, ...]) -> None:
        """Follow one value a piece of code reads; ``owner.key`` names it if it is a constant."""
        text = _constant_text(value)
        if text is not None:
            self.parts.add((f"{owner}.{key}" if key else owner, "=" + text))
            return
        if isinstance(value, ModuleType):
            self._visit_module(value, names)
            return
        if id(value) in self.seen:
            return
        step_type = _step_type()
        for level in _wrapped_chain(value):
            if isinstance(level, step_type):
                if id(level) not in self.seen and _is_project_function(level.func):
                    self.seen[id(level)] = level
                    self.add_step(level.func, _label(level.func))
                return
            if isinstance(level, FunctionType):
                self._queue(level)
            elif isinstance(level, type):
                self._queue(level)
                return
            elif isinstance(level, MethodType | staticmethod | classmethod):
                self.add_value(level.__func__, owner, key, names)
                return
            elif isinstance(level, functools.cached_property):
                self.add_value(level.func, owner, key, names)
                return
            elif isinstance(level, property):
                for accessor in (level.fget, level.fset, level.fdel):
                    if accessor is not None:
                        self.add_value(accessor, owner, key, names)
                return
            elif isinstance(level, functools.partial):
                self.add_value(level.func, owner, key, names)
                for i, arg in enumerate(level.args):
                    self.add_value(arg, owner, f"{key}.<arg>.{i}", names)
                for name, arg in level.keywords.items():
                    self.add_value(arg, owner, f"{key}.<arg>.{name}", names)
                return
            else:
                # An instance: what it does comes from its class.
                self._queue(type(level))

    def _queue(self, obj: Any) -> None:
        if id(obj) in self.seen:
            return
        self.seen[id(obj)] = obj
        if isinstance(obj, type):
            if not _is_project_class(obj):
                return
        elif not _function_facts(obj).project:
            return
        self.pending.append(obj)

    def _visit_function(self, func: FunctionType) -> None:
        facts = _function_facts(func)
        self.parts.add((facts.label, facts.digest))
        self._references(func, facts)

    def _references(self, func: FunctionType, facts: _FunctionFacts) -> None:
        """Follow the globals, closure cells and defaults of ``func``."""
        code = func.__code__
        names = facts.names
        namespace = func.__globals__
        module = _module_label(namespace.get("__name__", "?"))
        for name in names:
            value = namespace.get(name, _MISSING)
            if value is not _MISSING:
                self.add_value(value, module, name, names)
        label = facts.label
        for var, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.add_value(value, label, f"<closure>.{var}", names)
        for i, value in enumerate(func.__defaults__ or ()):
            self.add_value(value, label, f"<default>.{i}", names)
        for key, value in (func.__kwdefaults__ or {}).items():
            self.add_value(value, label, f"<default>.{key}", names)

    def _visit_module(self, module: ModuleType, names: tuple[str, ...]) -> None:
        """The attributes of a project module that the code names (``helpers.clean``)."""
        key = (id(module), names)
        if key in self.modules or not _is_project_module(module):
            return
        self.modules.add(key)
        self.seen[id(module)] = module
        attributes = vars(module)
        owner = _module_label(module.__name__)
        for name in names:
            value = attributes.get(name, _MISSING)
            if value is not _MISSING:
                self.add_value(value, owner, name, names)

    def _visit_class(self, cls: type) -> None:
        label = _label(cls)
        self.parts.add((label, _class_digest(cls)))
        for base in cls.__bases__:
            self._queue(base)
        for name, value in vars(cls).items():
            dunder = name.startswith("__") and name.endswith("__")
            if dunder and (_constant_text(value) is not None or isinstance(value, dict)):
                continue  # __doc__, __module__, __slots__, ... describe, they do not act
            self.add_value(value, label, name, ())


def _wrapped_chain(obj: Any) -> list[Any]:
    """``obj`` and what it wraps, following ``__wrapped__`` (decorated functions)."""
    chain = [obj]
    seen = {id(obj)}
    while callable(obj):
        try:
            obj = getattr(obj, "__wrapped__", None)
        except Exception:
            break
        if obj is None or id(obj) in seen:
            break
        seen.add(id(obj))
        chain.append(obj)
    return chain


def _foreign_digest(func: Callable[..., Any]) -> str:
    """Digest of a callable that is not a Python function: its source, else its code."""
    try:
        return _sha256(normalize_source(inspect.getsource(func)).encode())
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:
            raise PipelineError(
                f"cannot read the source of {func!r}: a step must be a Python function"
            ) from None
        return _sha256(marshal.dumps(code))


def clear_digest_caches() -> None:
    """Forget the digests remembered per code object, function and class.

    They are recomputed on demand; a process never needs this to see changed code, because
    changed code is new code objects. Tests use it to measure a cold start.
    """
    _code_digest.cache_clear()
    _code_names.cache_clear()
    _FUNCTION_FACTS.clear()
    _CLASS_DIGESTS.clear()


def source_digest(func: Callable[..., Any]) -> str:
    """SHA-256 (hex) of the code of a step function and of the project code it uses.

    See the module documentation for what is followed. Per code object and per class the
    normalised source is computed once; the walk over what the function references is redone
    on every call, so a helper module reloaded in a running session is seen.
    """
    # By name: this module is imported while the package itself is still being imported.
    version = str(importlib.import_module("opsloop").__version__)
    walk = _CodeWalk()
    walk.add_step(func, _STEP_LABEL)
    walk.run()
    document = {
        "opsloop": version,
        "code": sorted([label, digest] for label, digest in walk.parts),
    }
    return _sha256(canonical_json(document).encode())


def cache_key(
    *,
    source: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    outputs: Sequence[str],
    materializers: Sequence[str],
) -> str:
    """The cache key of one step execution, ``sha256:<hex>``.

    Args:
        source: The step's :func:`source_digest`.
        params: The step's parameters (JSON values).
        inputs: Argument name to the digest of the artifact passed in.
        outputs: The step's output names, in order.
        materializers: ``name@version`` of every registered materializer.
    """
    document = {
        "key": KEY_VERSION,
        "source": source,
        "params": params,
        "inputs": dict(inputs),
        "outputs": list(outputs),
        "materializers": sorted(materializers),
    }
    return "sha256:" + hashlib.sha256(canonical_json(document).encode()).hexdigest()
