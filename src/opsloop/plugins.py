"""Extension points: one registry per kind of plugin, filled by code and by entry points.

Every kind of backend opsloop picks by name — executors, runtimes, store backends, artifact
stores, detectors, model flavors, remediation actions — lives in one :class:`Registry`. Names
come from two places:

* code: ``REGISTRY.register("name", obj)``, where ``obj`` is the class or factory itself, or an
  import reference ``"package.module:attr"`` that is imported only when the name is first
  asked for (so a backend with heavy dependencies costs nothing until it is used);
* installed distributions: an entry point in the registry's group (one of
  :data:`ENTRY_POINT_GROUPS`), found through :func:`importlib.metadata.entry_points` the first
  time a name that code did not register is looked up, and imported only when asked for.

A name registered in code wins over an entry point of the same name. An entry point that
cannot be imported raises :class:`~opsloop.errors.PluginError` naming its distribution and
entry point when its name is asked for; every other name keeps working.
"""

from __future__ import annotations

import difflib
import logging
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from opsloop.errors import ConfigError, OpsloopError, PluginError

if TYPE_CHECKING:
    # importlib.metadata costs tens of milliseconds to import; the CLI starts on every call,
    # so it is imported only when a plugin is looked up (the lazy imports, noqa: PLC0415).
    from collections.abc import Callable, Iterator
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUPS", "Registry"]

T = TypeVar("T")

ENTRY_POINT_GROUPS = (
    "opsloop.executors",
    "opsloop.runtimes",
    "opsloop.store_backends",
    "opsloop.artifact_stores",
    "opsloop.detectors",
    "opsloop.flavors",
    "opsloop.remediation_actions",
)
"""The entry-point group of every kind of plugin."""

_log = logging.getLogger(__name__)


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    if dist is None or not dist.name:
        return "an unnamed distribution"
    return f"distribution '{dist.name} {dist.version}'"


class Registry(Generic[T]):
    """Named plugins of one kind.

    Args:
        kind: What one plugin is, for messages (``"executor"``).
        group: The entry-point group installed distributions add names to.
        plural: ``kind`` in the plural (default: ``kind + "s"``).
        error: The error an unknown name raises (the concern's own error class).
        hint: Hint of that error.
        check: Called as ``check(name, obj)`` on what a name resolves to; returns the object
            the registry hands out (it may build it, e.g. an instance from a class) and
            raises ``TypeError`` or ``ValueError`` when ``obj`` is the wrong kind of thing.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        *,
        plural: str | None = None,
        error: type[OpsloopError] = ConfigError,
        hint: str | None = None,
        check: Callable[[str, Any], T] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self.plural = plural or f"{kind}s"
        self._error = error
        self._hint = hint
        self._check = check
        self._code: dict[str, object] = {}
        self._entry_points: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, T] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.group!r})"

    def register(self, name: str, plugin: T | str, *, replace: bool = False) -> None:
        """Make ``plugin`` the one called ``name``.

        Args:
            name: The name users pick it by.
            plugin: The object itself (a class or factory), or an import reference
                ``"package.module:attr"`` imported when the name is first asked for.
            replace: Replace a plugin registered in code under the same name.

        Raises:
            OpsloopError: (the registry's error class) ``name`` is empty, or taken and
                ``replace`` is false.
        """
        if not isinstance(name, str) or not name.strip():
            raise self._error(f"a {self.kind} name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._code and not replace:
                raise self._error(
                    f"{self.kind} {name!r} is already registered",
                    hint="pass replace=True to replace it",
                )
            self._code[name] = plugin
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget the plugin registered in code as ``name`` (an entry point stays)."""
        with self._lock:
            self._code.pop(name, None)
            self._loaded.pop(name, None)

    def refresh(self) -> None:
        """Forget the entry points found so far; the next lookup reads them again.

        For a process that installs a distribution while it runs (and for tests).
        """
        with self._lock:
            self._entry_points = None
            self._loaded = {k: v for k, v in self._loaded.items() if k in self._code}

    def get(self, name: str) -> T:
        """The plugin called ``name``, imported on first use.

        Raises:
            OpsloopError: (the registry's error class) No plugin has that name; the message
                names the kind, the name and the known names.
            PluginError: The plugin cannot be imported, or is the wrong kind of object.
        """
        # The common path, a name already loaded, takes no lock.
        try:
            return self._loaded[name]
        except (KeyError, TypeError):
            pass
        if not isinstance(name, str):
            raise self._unknown(name)
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._code:
                source = self._code[name]
                if isinstance(source, str):
                    from importlib.metadata import EntryPoint  # noqa: PLC0415 - see the top

                    value = self._import(name, EntryPoint(name, source, self.group), None)
                else:
                    value = self._checked(name, source, f"{self.kind} {name!r}")
            else:
                ep = self._found().get(name)
                if ep is None:
                    raise self._unknown(name)
                value = self._import(name, ep, ep)
            self._loaded[name] = value
            return value

    def names(self) -> list[str]:
        """Every name, sorted: registered in code and found in entry points."""
        return sorted(self)

    def items(self) -> list[tuple[str, T]]:
        """Every name with its plugin, in registration order (code first, then entry points).

        A plugin that cannot be loaded is left out, with a warning in the log, so that one
        broken distribution does not hide the others; :meth:`get` raises its error.
        """
        out: list[tuple[str, T]] = []
        for name in self:
            try:
                out.append((name, self.get(name)))
            except PluginError as exc:
                _log.warning("%s", exc)
        return out

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._code or name in self._found())

    def __iter__(self) -> Iterator[str]:
        names = list(self._code)
        names += [n for n in self._found() if n not in self._code]
        return iter(names)

    def __len__(self) -> int:
        return len(set(self._code) | set(self._found()))

    def _found(self) -> dict[str, EntryPoint]:
        found = self._entry_points
        if found is None:
            with self._lock:
                if self._entry_points is None:
                    self._entry_points = self._scan()
                found = self._entry_points
        return found

    def _scan(self) -> dict[str, EntryPoint]:
        # Reads every installed distribution's metadata: done once per registry, and only
        # when a name is not registered in code.
        from importlib.metadata import entry_points  # noqa: PLC0415 - see the top

        try:
            eps = list(entry_points(group=self.group))
        except Exception as exc:
            raise PluginError(
                f"cannot read the entry points of group {self.group!r}: {type(exc).__name__}: {exc}"
            ) from exc
        found: dict[str, EntryPoint] = {}
        for ep in eps:
            if ep.name in found:
                # The first on sys.path wins, as for imports.
                _log.warning(
                    "%s %r of %s is ignored: %s already has that name",
                    self.kind,
                    ep.name,
                    _distribution(ep),
                    _distribution(found[ep.name]),
                )
                continue
            found[ep.name] = ep
        return found

    def _import(self, name: str, ep: EntryPoint, installed: EntryPoint | None) -> T:
        if installed is None:
            where = f"{self.kind} {name!r} ({ep.value})"
            hint = None
        else:
            where = (
                f"{self.kind} {name!r} from entry point '{ep.name} = {ep.value}' of "
                f"{_distribution(ep)} (group {self.group})"
            )
            hint = "reinstall that distribution, or uninstall it"
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(
                f"{where} cannot be imported: {type(exc).__name__}: {exc}", hint=hint
            ) from exc
        return self._checked(name, obj, where, hint)

    def _checked(self, name: str, obj: object, where: str, hint: str | None = None) -> T:
        if self._check is None:
            return cast("T", obj)
        try:
            return self._check(name, obj)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"{where} is not a usable {self.kind}: {exc}", hint=hint) from exc

    def _unknown(self, name: str) -> OpsloopError:
        known = self.names()
        message = f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(known) or 'none'}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        return self._error(message, hint=self._hint)
