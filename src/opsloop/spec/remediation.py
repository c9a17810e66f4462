"""The ``remediation`` section of ``opsloop.yaml``: policies that map incidents to actions.

    remediation:
      policies:
        - name: churn-remediation
          on: {kinds: [data_drift, quality_drop]}
          actions: [retrain, canary, promote, notify]
          cooldown_s: 3600
          max_actions_per_day: 3
          canary: {weight: 10, hold_s: 60, min_requests: 50, max_metric_drop: 0.02}
          notify: {webhook: "${CHURN_WEBHOOK_URL}"}
        - name: shrink-on-cost
          on: {kinds: [cost_anomaly]}
          actions: [scale_down]               # an action an installed package adds
          settings: {scale_down: {replicas: 1}}

The schema is validated with the rest of ``opsloop.yaml``: an action is a built-in
(:data:`ACTIONS`) or any name that follows the name rule, since installed packages add actions
(entry-point group ``opsloop.remediation_actions``); the remediation engine
(:mod:`opsloop.aiops.remediation`) refuses a name no installed package provides when it is
built, and runs the policies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol, TypeAlias, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsloop.names import check_name
from opsloop.secretrefs import is_reference
from opsloop.spec.alerting import IncidentKind, Severity, normalize_severity

__all__ = [
    "ACTIONS",
    "BUILTIN_SETTINGS",
    "ENV_REFERENCE",
    "ActionName",
    "ActionSettings",
    "CanarySettings",
    "IncidentLike",
    "NotifySettings",
    "PolicyTrigger",
    "RemediationPolicy",
    "RemediationSection",
    "RetrainSettings",
    "RollbackSettings",
]

ActionName = Literal["retrain", "canary", "promote", "rollback", "notify"]
ACTIONS: tuple[str, ...] = get_args(ActionName)
"""The built-in actions; installed packages add more under other names."""

#: ``${NAME}`` in a notify setting: read from the environment when the notification is sent.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class IncidentLike(Protocol):
    """What a trigger reads of an incident (:class:`opsloop.store.IncidentInfo` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def deployments(self) -> list[str]: ...
    @property
    def models(self) -> list[str]: ...


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CanarySettings(_Section):
    """How a new version is tried on a share of the traffic before promotion.

    Attributes:
        weight: Percent of requests the new version gets.
        hold_s: Seconds to hold the split before judging.
        min_requests: Requests the new version must serve before it is judged.
        max_metric_drop: Largest drop of the metric against the current version that passes.
        metric: The metric judged (default: the project's primary metric).
    """

    weight: float = Field(default=10, gt=0, lt=100)
    hold_s: float = Field(default=60, ge=0)
    min_requests: int = Field(default=50, ge=0)
    max_metric_drop: float = Field(default=0.02, ge=0)
    metric: str | None = None


class RetrainSettings(_Section):
    """How ``retrain`` builds its training table and runs the lifecycle.

    Attributes:
        window_s: How far back the deployment's labelled predictions are read, counted from
            the data time of the incident's newest alert (or now, if that is earlier).
        since_incident: Read nothing older than the start of the incident's first alert (the
            data time of its first bad point): traffic from before the problem began follows
            the relation the serving model already learned.
        include_original: Put the original training data before them.
        overrides: Lifecycle parameters for the retraining run (e.g. ``{trials: 5}``).
    """

    window_s: float = Field(default=86_400, gt=0)
    since_incident: bool = False
    include_original: bool = False
    overrides: dict[str, Any] = Field(default_factory=dict)


class RollbackSettings(_Section):
    """Settings of ``rollback``: none yet (it reverts the deployment's last change in Git)."""


class NotifySettings(_Section):
    """Where notifications go: an HTTP POST of JSON.

    ``${VAR}`` in the URL or a header value is read from the environment when the
    notification is sent, so secrets stay out of the repository and the metadata store; a
    whole value may also be a reference, ``env:NAME`` or ``file:PATH``.
    """

    webhook: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5, gt=0, le=120)

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str) -> str:
        if ENV_REFERENCE.search(value) or is_reference(value):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class PolicyTrigger(_Section):
    """Which incidents a policy acts on (all conditions must hold; empty lists match all).

    Attributes:
        kinds: Incident kinds (``data_drift``, ``quality_drop``, ``error_rate``, ``latency``,
            ``cost_anomaly``, ``infrastructure``, ``other``).
        severities: Incident severities.
        deployments: Deployments, one of which the incident must be on.
        models: Registered models, one of which the incident must be on.
    """

    kinds: list[IncidentKind] = Field(min_length=1)
    severities: list[Severity] = Field(default_factory=list)
    deployments: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)

    @field_validator("severities", mode="before")
    @classmethod
    def _severities(cls, value: object) -> object:
        if isinstance(value, list):
            return [normalize_severity(v) if isinstance(v, str) else v for v in value]
        return value

    def matches(self, incident: IncidentLike) -> bool:
        """Whether the incident is one this trigger selects."""
        if incident.kind not in self.kinds:
            return False
        if self.severities and incident.severity not in self.severities:
            return False
        if self.deployments and not set(self.deployments) & set(incident.deployments):
            return False
        return not (self.models and not set(self.models) & set(incident.models))


ActionSettings: TypeAlias = (
    CanarySettings | RetrainSettings | RollbackSettings | NotifySettings | dict[str, Any]
)
"""The settings an action gets: its section of the policy (a built-in's typed section, or the
plain mapping a plugin action's ``settings`` entry holds)."""

BUILTIN_SETTINGS: dict[str, type[BaseModel]] = {
    "retrain": RetrainSettings,
    "canary": CanarySettings,
    "promote": CanarySettings,
    "rollback": RollbackSettings,
    "notify": NotifySettings,
}
"""The settings section of each built-in action (``promote`` runs under ``canary``'s)."""


class RemediationPolicy(_Section):
    """One remediation policy.

    Attributes:
        name: Unique name (recorded on every action).
        trigger: Which incidents (YAML key ``on``).
        actions: What to do, in order: the built-ins ``retrain``, ``canary``, ``promote``,
            ``rollback``, ``notify``, and actions installed packages add.
        dry_run: Record the actions without running them (notifications still go out).
        require_approval: Park the actions until someone approves them.
        cooldown_s: Seconds after an action on a target before the policy acts on it again.
        max_actions_per_day: Actions (other than notifications) the policy may run in 24 h.
        canary: Canary settings for ``canary``.
        notify: Webhook for ``notify``.
        retrain: Settings of ``retrain``.
        rollback: Settings of ``rollback``.
        settings: Settings of the actions installed packages add, by action name.
        resolve_on_success: When every action succeeded and one of them changed what serves
            (``promote`` or ``rollback``), resolve the incident: its alerts end, and if the
            problem comes back it fires again and opens a new incident.
    """

    name: str
    trigger: PolicyTrigger = Field(alias="on")
    actions: list[str] = Field(min_length=1)
    dry_run: bool = False
    require_approval: bool = False
    cooldown_s: float = Field(default=3600, ge=0)
    max_actions_per_day: int = Field(default=3, ge=1)
    canary: CanarySettings = Field(default_factory=CanarySettings)
    notify: NotifySettings | None = None
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    resolve_on_success: bool = True

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare ``on`` key as the boolean true.
        if isinstance(data, Mapping) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name("policy", value)

    @field_validator("actions")
    @classmethod
    def _action_names(cls, value: list[str]) -> list[str]:
        for name in value:
            check_name("remediation action", name)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RemediationPolicy:
        seen: set[str] = set()
        for action in self.actions:
            if action in seen:
                raise ValueError(f"action {action!r} is listed twice")
            seen.add(action)
        if "notify" in seen and self.notify is None:
            raise ValueError("action 'notify' needs a 'notify: {webhook: URL}' setting")
        if "promote" in seen and (
            "canary" not in seen or self.actions.index("canary") > self.actions.index("promote")
        ):
            raise ValueError(
                "'promote' needs a 'canary' before it: a version is promoted "
                "only when its canary holds"
            )
        if "canary" in seen and "rollback" in seen:
            raise ValueError("'canary' and 'rollback' do not go in one policy: write two")
        for name in self.settings:
            if name in ACTIONS:
                key = "canary" if name == "promote" else name
                raise ValueError(
                    f"settings of the built-in action {name!r} go under '{key}:', not 'settings:'"
                )
            if name not in seen:
                raise ValueError(
                    f"'settings' names {name!r}, which is not among the policy's actions"
                )
        return self

    def settings_for(self, action: str) -> ActionSettings:
        """The settings ``action`` runs with: its typed section for a built-in (see
        :data:`BUILTIN_SETTINGS`), its ``settings`` entry (or nothing) for another action.

        Raises:
            ValueError: ``action`` is ``notify`` and the policy has no ``notify`` setting.
        """
        if action not in BUILTIN_SETTINGS:
            return dict(self.settings.get(action, {}))
        section: ActionSettings | None = getattr(self, "canary" if action == "promote" else action)
        if section is None:
            raise ValueError(f"policy '{self.name}' has no '{action}' setting")
        return section


class RemediationSection(_Section):
    """The ``remediation`` section of ``opsloop.yaml``."""

    policies: list[RemediationPolicy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RemediationSection:
        names = [p.name for p in self.policies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"policy name(s) used more than once: {', '.join(dup)}")
        return self
