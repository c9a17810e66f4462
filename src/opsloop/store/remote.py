"""The metadata store of a team server (remote mode): the same repositories, over HTTP.

With ``OPSLOOP_SERVER`` set, :attr:`opsloop.context.Project.store` is a :class:`RemoteStore`:
``store.runs.create(...)``, ``store.models.get_version(...)`` and the other calls on
:data:`REMOTE_METHODS` are sent to the server's store RPC
(``POST /api/v1/store/{repository}/{method}``), which runs the same repository method on the
server's store for the caller the token names. Arguments and results travel as JSON made from
the methods' own type hints (:func:`remote_method`), so a call returns the same records, and
raises the same error classes with the same messages, as on a local store.

Only the methods listed here exist remotely; every other method of a repository raises a
``ConfigError`` naming it, and the server refuses anything not listed. Each listed method names
the access action it needs on the server (see :mod:`opsloop.secops.access`): ``read``, ``log``,
``register``, ``deploy``, or ``alias`` (moving an alias: ``alias.move``, or
``alias.move_protected`` for a protected alias).
"""

from __future__ import annotations

import builtins
import collections.abc
import datetime as dt
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, Required, cast

import httpx
from pydantic import ConfigDict, TypeAdapter
from pydantic_core import to_json

# pydantic reads TypedDicts of typing_extensions only, before Python 3.12.
from typing_extensions import TypedDict

from opsloop.artifacts.remote import network_error, open_client, raise_for_problem
from opsloop.errors import ConfigError, StoreError
from opsloop.redact import redact_url
from opsloop.store.facade import Store
from opsloop.store.liveness import ProcessIdentity, this_process
from opsloop.store.repos.datasets import DatasetRepository
from opsloop.store.repos.deployments import DeploymentRepository
from opsloop.store.repos.events import EventRepository
from opsloop.store.repos.incidents import IncidentRepository
from opsloop.store.repos.models import ModelRepository
from opsloop.store.repos.predictions import PredictionRepository
from opsloop.store.repos.runs import RunRepository
from opsloop.store.repos.schedules import ScheduleRepository, SourceLoadRepository
from opsloop.store.repos.series import SeriesRepository
from opsloop.store.repos.steps import StepRepository

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "REMOTE_EVENT_KINDS",
    "REMOTE_METHODS",
    "REPOSITORIES",
    "STORE_PATH",
    "RemoteMethod",
    "RemoteStore",
    "dump_json",
    "remote_method",
]

STORE_PATH = "/api/v1/store"
"""Where the server answers store calls: ``{STORE_PATH}/{repository}/{method}``."""

REPOSITORIES: dict[str, type] = {
    "runs": RunRepository,
    "steps": StepRepository,
    "datasets": DatasetRepository,
    "models": ModelRepository,
    "events": EventRepository,
    "series": SeriesRepository,
    "deployments": DeploymentRepository,
    "incidents": IncidentRepository,
    "predictions": PredictionRepository,
    "sources": SourceLoadRepository,
    "schedules": ScheduleRepository,
}
"""The store's repositories by attribute name (see :class:`~opsloop.store.facade.Store`)."""

_READ = "read"

REMOTE_METHODS: dict[str, dict[str, str]] = {
    "runs": {
        "create": "log",
        "finish": "log",
        "get": _READ,
        "list": _READ,
        "heartbeat": "log",
        "reap_dead": "log",
        "log_params": "log",
        "set_tags": "log",
        "log_metric_points": "log",
        "metric_history": _READ,
        "count_metric_points": _READ,
        "log_artifact": "log",
        "list_artifacts": _READ,
        "count_by_kind": _READ,
    },
    "steps": {"find_cached": _READ, "list": _READ},
    "datasets": {"record": "log", "get": _READ},
    "models": {
        "create": "register",
        "get": _READ,
        "list": _READ,
        "create_version": "register",
        "get_version": _READ,
        "get_version_by_alias": _READ,
        "list_versions": _READ,
        "set_alias": "alias",
        "delete_alias": "alias",
        "update": "register",
        "update_version": "register",
        "all_versions": _READ,
        "aliases": _READ,
    },
    "events": {"emit": "log", "list": _READ},
    "series": {
        "read": _READ,
        "list": _READ,
        "last_time": _READ,
        "last_values_before": _READ,
    },
    "deployments": {
        "get": _READ,
        "list": _READ,
        "history": _READ,
        "last_sync": _READ,
    },
    "incidents": {
        "list_alerts": _READ,
        "get_alert": _READ,
        "get": _READ,
        "list": _READ,
        "count_by_status": _READ,
        "list_actions": _READ,
    },
    "predictions": {
        "count": _READ,
        "count_rows": _READ,
        "deployments": _READ,
        "newest_time": _READ,
        "read": _READ,
        "read_feedback": _READ,
        "deployments_since": _READ,
        "labels_between": _READ,
        "read_by_request": _READ,
    },
    "sources": {"record": "log", "latest": _READ, "list": _READ},
    "schedules": {
        "cursor": _READ,
        "active": _READ,
        "history": _READ,
        "last_runs": _READ,
    },
}
"""What a remote store may call: repository -> method -> the access action it needs."""

REMOTE_EVENT_KINDS = frozenset({"security.refused"})
"""The events a client may append itself (``store.events.emit``): the refusals of the
admission policy it checks. Every other event is written by the store call it records."""

# Names the repositories import for type checking only, so that their hints resolve here.
_HINT_NAMES: dict[str, Any] = {
    "builtins": builtins,
    "Any": Any,
    "Sequence": collections.abc.Sequence,
    "Iterable": collections.abc.Iterable,
    "Mapping": collections.abc.Mapping,
    "datetime": dt.datetime,
    "ProcessIdentity": ProcessIdentity,
}

# NaN and the infinities are metric values like any other: JSON carries them as the tokens
# NaN / Infinity, which both ends parse.
_JSON_CONFIG = ConfigDict(ser_json_inf_nan="constants")


def dump_json(value: Any) -> bytes:
    """JSON of plain Python values (as ``TypeAdapter.dump_python`` leaves them), with NaN and
    the infinities kept; anything else JSON cannot hold is written as its text."""
    return to_json(value, inf_nan_mode="constants", fallback=str)


@dataclass(frozen=True)
class RemoteMethod:
    """How one repository method travels: its signature, and adapters built from its hints.

    Attributes:
        repository: The repository's attribute name on the store (``runs``).
        name: The method's name (``log_metric_points``).
        action: The access action it needs (see :data:`REMOTE_METHODS`).
        signature: Its signature without ``self``.
        parameters: An adapter per parameter, to write arguments as JSON; None for a
            parameter of plain JSON types (strings, numbers, lists, dicts ...), which are
            written as they are: the adapter's walk over a batch of metric points would cost
            five times the JSON encoding.
        arguments: An adapter for the whole JSON object of arguments (unknown names refused).
        result: An adapter for its return value (as it travels: see ``pairs``).
        pairs: The result is a dict whose keys are not strings (JSON keys are): it travels as
            a list of key-value pairs.
    """

    repository: str
    name: str
    action: str
    signature: inspect.Signature
    parameters: dict[str, TypeAdapter[Any] | None]
    arguments: TypeAdapter[Any]
    result: TypeAdapter[Any]
    pairs: bool = False

    def dump_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The JSON body of a call (``TypeError`` for arguments the method does not take)."""
        bound = self.signature.bind(*args, **kwargs)
        values = {}
        for name, value in bound.arguments.items():
            adapter = self.parameters[name]
            values[name] = value if adapter is None else adapter.dump_python(value, warnings=False)
        return dump_json(values)

    def dump_result(self, value: Any) -> bytes:
        """The JSON body of a result."""
        if self.pairs:
            value = list(value.items())
        return dump_json(self.result.dump_python(value, warnings=False))

    def load_result(self, content: bytes) -> Any:
        """A result from its JSON body (``ValueError`` when it is not one)."""
        value = self.result.validate_json(content)
        return dict(value) if self.pairs else value


@functools.cache
def remote_method(repository: str, name: str) -> RemoteMethod | None:
    """The method ``repository.name`` of :data:`REMOTE_METHODS`, None when not listed.

    Built once per method from the repository method's signature and type hints.
    """
    action = REMOTE_METHODS.get(repository, {}).get(name)
    if action is None:
        return None
    func = getattr(REPOSITORIES[repository], name)
    module = inspect.getmodule(func)
    namespace = {**_HINT_NAMES, **(vars(module) if module is not None else {})}
    hints = typing.get_type_hints(func, globalns=namespace)
    full = inspect.signature(func)
    params = [p for p in full.parameters.values() if p.name != "self"]
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{repository}.{name}: *args and **kwargs do not travel")
        hint = hints.get(p.name, Any)
        fields[p.name] = Required[hint] if p.default is p.empty else NotRequired[hint]
    returns = hints.get("return", Any)
    key, value = typing.get_args(returns) if typing.get_origin(returns) is dict else (str, Any)
    pairs = key is not str and key is not Any
    if pairs:
        returns = list[tuple[key, value]]  # type: ignore[valid-type]
    typed = TypedDict(f"{repository}.{name}", fields)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        extra="forbid", ser_json_inf_nan="constants"
    )
    return RemoteMethod(
        repository=repository,
        name=name,
        action=action,
        signature=full.replace(parameters=params),
        parameters={
            p.name: None
            if _plain(hints.get(p.name, Any))
            else TypeAdapter(hints.get(p.name, Any), config=_adapter_config(hints, p.name))
            for p in params
        },
        arguments=TypeAdapter(typed),
        result=TypeAdapter(returns, config=_adapter_config({"return": returns}, "return")),
        pairs=pairs,
    )


_PLAIN_LEAVES = (str, int, float, bool, type(None), Any)
_PLAIN_CONTAINERS = (
    list,
    tuple,
    dict,
    collections.abc.Sequence,
    collections.abc.Mapping,
    collections.abc.Iterable,
    typing.Union,
    types.UnionType,
)


def _plain(hint: Any) -> bool:
    """Whether values of ``hint`` are JSON as they are (no records, datetimes, sets ...)."""
    if hint in _PLAIN_LEAVES or hint is Ellipsis:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return all(
            isinstance(a, str | int | float | bool | type(None)) for a in typing.get_args(hint)
        )
    if origin not in _PLAIN_CONTAINERS:
        return False
    return all(_plain(arg) for arg in typing.get_args(hint))


def _adapter_config(hints: dict[str, Any], name: str) -> ConfigDict | None:
    # pydantic refuses a config for types that carry their own (models, dataclasses).
    hint = hints.get(name, Any)
    has_own = isinstance(hint, type) and (
        hasattr(hint, "model_config") or hasattr(hint, "__pydantic_config__")
    )
    return None if has_own else _JSON_CONFIG


def _fill_writer(method: RemoteMethod, kwargs: dict[str, Any]) -> dict[str, Any]:
    # A run records the process that writes it, which is this one, not the server.
    if method.repository == "runs" and method.name == "create" and "writer" not in kwargs:
        return {**kwargs, "writer": this_process()}
    return kwargs


class _RemoteRepository:
    """A repository whose listed methods are calls to the server."""

    def __init__(self, store: RemoteStore, name: str) -> None:
        self._store = store
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        method = remote_method(self._name, attr)
        if method is None:
            real = getattr(REPOSITORIES[self._name], attr, None)
            if attr.startswith("_") or real is None:
                raise AttributeError(attr)
            raise ConfigError(
                f"store.{self._name}.{attr} does not work in remote mode "
                f"(OPSLOOP_SERVER={redact_url(self._store.server)})",
                hint="run it on the server, or unset OPSLOOP_SERVER to use a local store",
            )
        call = functools.partial(self._store.call, method)
        functools.update_wrapper(call, getattr(REPOSITORIES[self._name], attr))
        setattr(self, attr, call)  # found directly from now on
        return call

    def __repr__(self) -> str:
        return f"<remote {self._name} of {redact_url(self._store.server)}>"


class RemoteStore(Store):
    """The metadata store of an opsloop server, with the repositories of :class:`Store`.

    Args:
        server: The server's base URL, e.g. ``http://host:8700``.
        token: The bearer token (``OPSLOOP_TOKEN``); None in the server's local mode.
        actor: Who is acting, as far as this process knows (the server records the
            identity its token names).
        transport: An httpx transport (tests).

    Raises:
        ConfigError: ``server`` is not an ``http(s)://`` URL.
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        actor: str = "unknown",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # No database here: Store.__init__ is not called on purpose.
        self.server = server.rstrip("/")
        self._actor = actor
        self._client = open_client(self.server, token, transport=transport)
        self.requests = 0
        self.runs = cast("RunRepository", _RemoteRepository(self, "runs"))
        self.steps = cast("StepRepository", _RemoteRepository(self, "steps"))
        self.datasets = cast("DatasetRepository", _RemoteRepository(self, "datasets"))
        self.models = cast("ModelRepository", _RemoteRepository(self, "models"))
        self.events = cast("EventRepository", _RemoteRepository(self, "events"))
        self.predictions = cast("PredictionRepository", _RemoteRepository(self, "predictions"))
        self.series = cast("SeriesRepository", _RemoteRepository(self, "series"))
        self.deployments = cast("DeploymentRepository", _RemoteRepository(self, "deployments"))
        self.incidents = cast("IncidentRepository", _RemoteRepository(self, "incidents"))
        self.sources = cast("SourceLoadRepository", _RemoteRepository(self, "sources"))
        self.schedules = cast("ScheduleRepository", _RemoteRepository(self, "schedules"))

    def call(self, method: RemoteMethod, /, *args: Any, **kwargs: Any) -> Any:
        """Call a listed repository method on the server and decode its result.

        Raises:
            OpsloopError: The class the server's store raised, with its message and hint.
            StoreError: The server cannot be reached, or answered something else.
        """
        body = method.dump_arguments(args, _fill_writer(method, kwargs))
        path = f"{STORE_PATH}/{method.repository}/{method.name}"
        self.requests += 1
        try:
            response = self._client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise StoreError(
                network_error(self.server, exc, f"{method.repository}.{method.name}"),
                hint="check OPSLOOP_SERVER and that 'opsloop server' runs there",
            ) from exc
        raise_for_problem(self.server, response)
        try:
            return method.load_result(response.content)
        except ValueError as exc:
            raise StoreError(
                f"opsloop server {self.safe_url} answered {method.repository}.{method.name} "
                f"with something that is not its result: {str(exc).splitlines()[0]}"
            ) from exc

    @property
    def url(self) -> str:
        """The server's URL."""
        return self.server

    @property
    def safe_url(self) -> str:
        """The server's URL, any password in it masked."""
        return redact_url(self.server)

    @property
    def actor(self) -> str:
        """Who is acting, as this process knows it."""
        return self._actor

    @property
    def engine(self) -> Engine:
        """A remote store has no database engine here."""
        raise ConfigError(
            f"the metadata store is the server {self.safe_url}: it has no engine here"
        )

    def __getattr__(self, attr: str) -> Any:
        if attr == "db":
            raise ConfigError(
                f"the metadata store is the server {self.safe_url}: it has no database here"
            )
        raise AttributeError(attr)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteStore({self.safe_url!r})"
