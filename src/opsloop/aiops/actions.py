"""What a remediation action is: the context it runs in, the result it records, and every
action by name.

An action is a callable ``(context) -> result``. It gets an :class:`ActionContext` — the
incident, the deployment, model and version it is about, the policy, its own settings, what
the earlier actions of the chain did — and returns an :class:`ActionResult` — what it did in
words, the version it produced or served, the Git commits it made, and details — which the
remediation engine stores as the action's result. Raising marks the action failed with the
exception's message; an action that raises must leave serving as it found it.

:data:`REMEDIATION_ACTIONS` holds every action by name: the built-ins (``retrain``,
``canary``, ``promote``, ``rollback``, ``notify``), whose work is the engine's
:class:`~opsloop.aiops.executors.ActionExecutor`'s, and the actions installed distributions add
with an entry point in the group ``opsloop.remediation_actions``::

    # pyproject.toml of mypkg
    [project.entry-points."opsloop.remediation_actions"]
    scale_down = "mypkg.remediation:scale_down"

    # mypkg/remediation.py
    from opsloop.aiops.actions import ActionContext, ActionResult

    def scale_down(context: ActionContext) -> ActionResult:
        replicas = int(context.settings_as(dict).get("replicas", 1))
        ...  # act on context.deployment
        return ActionResult(did=f"scaled {context.deployment} to {replicas}")

A policy then lists it (``actions: [scale_down]``) with its settings under
``settings: {scale_down: {replicas: 1}}``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsloop.errors import AIOpsError
from opsloop.plugins import Registry
from opsloop.spec.remediation import (
    ACTIONS,
    BUILTIN_SETTINGS,
    ActionSettings,
    NotifySettings,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opsloop.store.types import IncidentInfo

__all__ = [
    "REMEDIATION_ACTIONS",
    "ActionContext",
    "ActionResult",
    "BuiltinAction",
    "Compensation",
    "Outcome",
    "RemediationAction",
    "incident_subject",
]

S = TypeVar("S")

_RESULT_FIELDS = frozenset({"did", "model", "version", "commits"})


class ActionResult(BaseModel):
    """What an action did, stored as the action's result.

    It is stored as one flat JSON object: ``did``, ``model``, ``version`` and ``commits``
    (each when set) beside the keys of ``details``, the shape results had before they were
    typed, so the timeline, ``opsloop incidents show`` and older rows read alike.

    Attributes:
        did: What it did, in words (shown on the timeline).
        model: The registered model it is about.
        version: The version it produced (``retrain``) or that serves afterwards.
        commits: The Git commits it made, in order.
        details: Everything else, JSON-ready (its keys are not the field names above).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    did: str = ""
    model: str | None = None
    version: int | None = None
    commits: tuple[str, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("details")
    @classmethod
    def _apart_from_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(value) & _RESULT_FIELDS)
        if clash:
            raise ValueError(f"details key {clash[0]!r} is a field of its own: set the field")
        return value

    def to_json(self) -> dict[str, Any]:
        """The result as stored: the fields that are set, then the details, in one object."""
        out: dict[str, Any] = {}
        if self.did:
            out["did"] = self.did
        if self.model is not None:
            out["model"] = self.model
        if self.version is not None:
            out["version"] = self.version
        if self.commits:
            out["commits"] = list(self.commits)
        out.update(self.details)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ActionResult:
        """Read a stored result back, rows written before results were typed included: a
        key that is not a field, or whose value does not fit its field, lands in details."""
        details = dict(data or {})
        fields: dict[str, Any] = {}
        if isinstance(details.get("did"), str):
            fields["did"] = details.pop("did")
        if isinstance(details.get("model"), str):
            fields["model"] = details.pop("model")
        version = details.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            fields["version"] = details.pop("version")
        commits = details.get("commits")
        if isinstance(commits, list) and all(isinstance(c, str) for c in commits):
            fields["commits"] = tuple(details.pop("commits"))
        if _RESULT_FIELDS & details.keys():
            # A value that fits no field is kept under its own name, which a result built in
            # code may not do: reading a record back must not lose any of it.
            return cls.model_construct(**fields, details=details)
        return cls(**fields, details=details)


@dataclass(frozen=True)
class Outcome:
    """How an earlier action of the chain ended.

    Attributes:
        action: Its name.
        status: ``succeeded``, ``failed``, ``skipped`` or ``cancelled``.
        result: What it did, when it succeeded.
        error: Why it failed or did not run.
        state: For a failure, whether serving is as it was.
    """

    action: str
    status: str
    result: ActionResult | None = None
    error: str | None = None
    state: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy (as a notification carries it)."""
        out: dict[str, Any] = {"action": self.action, "status": self.status}
        if self.result is not None:
            out["result"] = self.result.to_json()
        if self.error is not None:
            out["error"] = self.error
        if self.state is not None:
            out["state"] = self.state
        return out


@dataclass(frozen=True)
class Compensation:
    """The canary a compensating ``rollback`` withdraws.

    Attributes:
        action_id: The canary's action.
        result: What the canary did.
        reason: Why it is withdrawn (the later action that failed).
    """

    action_id: int
    result: ActionResult
    reason: str


def incident_subject(incident: IncidentInfo) -> dict[str, Any]:
    """What an incident's actions act on, JSON-ready: ``target`` (what guardrails count per:
    its deployments, else its root cause), ``deployments``, ``deployment`` (the first),
    ``models``, and ``model`` and ``version`` when the root cause is a model version (the
    model alone when the incident is on one)."""
    root = incident.root_cause
    model = version = None
    if root and root.startswith("model:"):
        model, _, version = root[6:].rpartition("/")
    deployments = list(incident.deployments)
    return {
        "target": ",".join(deployments) or root or f"incident:{incident.id}",
        "deployments": deployments,
        "deployment": deployments[0] if deployments else None,
        "models": list(incident.models),
        "model": model or (incident.models[0] if len(incident.models) == 1 else None),
        "version": int(version) if version and version.isdigit() else None,
    }


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """Everything an action is told when it runs.

    Attributes:
        action: The action's name.
        incident: The incident.
        policy: The policy that planned the action.
        target: What the policy's guardrails count actions per (the deployments).
        deployment: The deployment to act on (the incident's first), if any.
        deployments: Every deployment of the incident.
        model: The registered model the incident is about, if one.
        version: Its version, when the root cause is a model version.
        settings: The action's settings: its typed section of the policy for a built-in
            (:class:`~opsloop.spec.remediation.CanarySettings` for ``canary`` and
            ``promote``, ``RetrainSettings``, ``RollbackSettings``, ``NotifySettings``), the
            policy's ``settings`` entry (a dict) for another action.
        dry_run: The policy only records what would run (a ``notify`` still runs).
        previous: What the earlier actions of the chain that succeeded did, by name.
        outcomes: How every earlier action of the chain ended, in order.
        event: Why it runs: ``remediation``, or ``awaiting_approval`` for the notification
            that asks for an approval.
        compensates: For a ``rollback`` the engine runs to withdraw a canary, that canary.
        action_id: The stored action's id (a key for making the action idempotent).
    """

    action: str
    incident: IncidentInfo
    policy: str
    target: str
    deployment: str | None = None
    deployments: tuple[str, ...] = ()
    model: str | None = None
    version: int | None = None
    settings: ActionSettings = field(default_factory=dict)
    dry_run: bool = False
    previous: Mapping[str, ActionResult] = field(default_factory=dict)
    outcomes: tuple[Outcome, ...] = ()
    event: str = "remediation"
    compensates: Compensation | None = None
    action_id: int | None = None

    @classmethod
    def for_incident(
        cls,
        incident: IncidentInfo,
        action: str,
        *,
        policy: str = "manual",
        settings: ActionSettings | None = None,
        **fields: Any,
    ) -> ActionContext:
        """A context for running ``action`` on ``incident`` outside a policy (by hand, in
        tests): deployment, model and version follow from the incident, and a built-in's
        settings default to its section's defaults.

        Args:
            incident: The incident.
            action: The action's name.
            policy: The name recorded as the policy.
            settings: The action's settings (default: a built-in's defaults, else empty).
            **fields: Any other attribute (``previous``, ``compensates`` …).

        Raises:
            AIOpsError: ``notify`` without settings (a webhook is needed).
        """
        if settings is None:
            section = BUILTIN_SETTINGS.get(action)
            if section is NotifySettings:
                raise AIOpsError("a 'notify' context needs NotifySettings (its webhook)")
            settings = cast("ActionSettings", section()) if section is not None else {}
        subject = incident_subject(incident)
        base: dict[str, Any] = {
            "target": subject["target"],
            "deployment": subject["deployment"],
            "deployments": tuple(subject["deployments"]),
            "model": subject["model"],
            "version": subject["version"],
        }
        base.update(fields)
        return cls(action=action, incident=incident, policy=policy, settings=settings, **base)

    def settings_as(self, kind: type[S]) -> S:
        """The action's settings, checked to be a ``kind`` (a section class, or ``dict``).

        Raises:
            AIOpsError: They are another kind of settings.
        """
        if not isinstance(self.settings, kind):
            raise AIOpsError(
                f"action '{self.action}' got {type(self.settings).__name__} settings, "
                f"not {kind.__name__}"
            )
        return self.settings


class RemediationAction(Protocol):
    """A remediation action: called with its context, returns what it did."""

    def __call__(self, context: ActionContext, /) -> ActionResult:
        """Do the action.

        Raises:
            Exception: It failed (and left serving as it found it); the message is recorded.
        """
        ...


class BuiltinAction:
    """A built-in action's entry in :data:`REMEDIATION_ACTIONS`: its name is known to every
    policy, and its work is done by the engine's executor (retraining and Git commits live in
    the loop, above this package)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"BuiltinAction({self.name!r})"

    def __call__(self, context: ActionContext, /) -> ActionResult:
        """Refuse: a built-in runs only through an executor.

        Raises:
            AIOpsError: Always.
        """
        raise AIOpsError(
            f"the built-in action '{self.name}' runs through a remediation engine's executor"
        )


def _action(name: str, obj: Any) -> RemediationAction:
    if isinstance(obj, type):
        raise TypeError(
            f"{obj.__module__}.{obj.__qualname__} is a class: name an instance or a function"
        )
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable")
    try:
        inspect.signature(obj).bind(None)
    except TypeError:
        raise TypeError(f"{obj!r} cannot be called with one argument (the context)") from None
    except ValueError:
        pass  # no signature to read (a C function): calling it will tell
    return cast("RemediationAction", obj)


REMEDIATION_ACTIONS: Registry[RemediationAction] = Registry(
    "remediation action",
    "opsloop.remediation_actions",
    error=AIOpsError,
    hint="install the distribution that provides it, or correct the policy",
    check=_action,
)
"""Every remediation action by name: the built-ins first, then those of entry points."""

for _name in ACTIONS:
    REMEDIATION_ACTIONS.register(_name, BuiltinAction(_name))
