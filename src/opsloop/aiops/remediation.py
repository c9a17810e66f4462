"""Remediation: the engine that runs policies on incidents, with guardrails and approval.

Policies are declared in ``opsloop.yaml`` (schema: :mod:`opsloop.spec.remediation`)::

    remediation:
      policies:
        - name: churn-remediation
          on: {kinds: [data_drift, quality_drop]}
          actions: [retrain, canary, promote, notify]
          cooldown_s: 3600
          max_actions_per_day: 3
          canary: {weight: 10, hold_s: 60, min_requests: 50, max_metric_drop: 0.02}
          notify: {webhook: "${CHURN_WEBHOOK_URL}"}
        - name: rollback-on-errors
          on: {kinds: [error_rate, latency]}
          actions: [rollback, notify]
          require_approval: true
          notify: {webhook: "https://hooks.example.com/ops"}

The engine (:class:`RemediationEngine`) picks the first policy whose ``on`` matches an open
incident and runs its actions in order, each with an
:class:`~opsloop.aiops.actions.ActionContext`, recording the
:class:`~opsloop.aiops.actions.ActionResult` it returns. The actions are those of
:data:`~opsloop.aiops.actions.REMEDIATION_ACTIONS`: the built-ins' work (retraining through the
lifecycle and its gates, canary, promotion and rollback through Git commits, notifications) is
the engine's :class:`~opsloop.aiops.executors.ActionExecutor`'s; an installed distribution's
action is called itself. A policy naming an action nobody provides is refused when the engine
is built. Around the actions the engine keeps the guardrails:

* **cooldown** — no action of the policy on the same target (the incident's deployments)
  within ``cooldown_s`` of the last one;
* **daily limit** — at most ``max_actions_per_day`` actions of the policy in 24 hours;
* **dry run** — record what would run (``dry_run``), run nothing; notifications still go out,
  marked as a dry run, since they are how people see what would have happened;
* **approval** — park the actions (``awaiting_approval``) until ``opsloop incidents approve``.

Every action but ``notify`` counts for the cooldown and the daily limit. An action that fails
stops the chain: the actions after it are cancelled (a ``notify`` still runs, to tell people),
and a canary that went live before the failure is withdrawn by a compensating ``rollback``, so
serving is left as it was; the failure's record says whether it is. Every action and every
change of its status is an audit event on the incident.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from opsloop.aiops.actions import (
    REMEDIATION_ACTIONS,
    ActionContext,
    ActionResult,
    BuiltinAction,
    Compensation,
    Outcome,
    RemediationAction,
    incident_subject,
)
from opsloop.aiops.executors import ActionExecutor, WebhookExecutor
from opsloop.aiops.incidents import get_incident, list_actions, list_incidents, resolve
from opsloop.errors import AIOpsError, OpsloopError, PluginError
from opsloop.spec.loader import load_section
from opsloop.spec.remediation import (
    ACTIONS,
    BUILTIN_SETTINGS,
    ActionSettings,
    RemediationPolicy,
    RemediationSection,
    RollbackSettings,
)
from opsloop.store.liveness import gone_reason, this_process

if TYPE_CHECKING:
    from pathlib import Path

    from opsloop.plugins import Registry
    from opsloop.store import Store
    from opsloop.store.types import ActionInfo, IncidentInfo

__all__ = [
    "NO_POLICY",
    "RemediationEngine",
    "approve",
    "load_remediation_section",
    "reject",
]

# Built-ins that change what serves for good: a chain with one of them may resolve its incident.
_HEALS = ("promote", "rollback")
_DONE = ("running", "succeeded", "failed", "interrupted")
NO_POLICY = "none"
"""What a deployment's ``spec.remediation`` says to keep every policy off it."""
_DAY = timedelta(days=1)


def load_remediation_section(path: Path) -> RemediationSection:
    """The ``remediation`` section of ``opsloop.yaml`` (empty when absent).

    Raises:
        SpecError: It is invalid; the message names file, line and field.
    """
    return load_section(path, "remediation", RemediationSection)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class RemediationEngine:
    """Runs remediation policies on incidents.

    Args:
        store: The metadata store.
        executor: Does the built-in actions' work.
        policies: The policies, first match wins.
        clock: The current time (tests move it to cross cooldowns and days).
        pinned: The policy a deployment's document names (``spec.remediation``), by
            deployment; ``none`` keeps every policy off it. An incident on a deployment that
            names a policy is remediated by that policy only (when its trigger matches).
        actions: The actions by name (default:
            :data:`~opsloop.aiops.actions.REMEDIATION_ACTIONS`).

    Raises:
        AIOpsError: A policy names an action no registry knows; the message names the
            policy, the action and the known actions.
        PluginError: The distribution of an action a policy names cannot be imported.
    """

    def __init__(
        self,
        store: Store,
        executor: ActionExecutor,
        policies: RemediationSection | Sequence[RemediationPolicy] = (),
        *,
        clock: Callable[[], datetime] | None = None,
        pinned: Mapping[str, str] | None = None,
        actions: Registry[RemediationAction] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.policies = list(
            policies.policies if isinstance(policies, RemediationSection) else policies
        )
        self.clock = clock or _utcnow
        self.pinned = dict(pinned or {})
        self.actions = REMEDIATION_ACTIONS if actions is None else actions
        for policy in self.policies:
            for name in policy.actions:
                try:
                    self.actions.get(name)
                except (AIOpsError, PluginError) as exc:
                    message = f"policy '{policy.name}': {exc.message}"
                    raise type(exc)(message, hint=exc.hint) from exc

    # -- planning ------------------------------------------------------------------------

    def policy_for(self, incident: IncidentInfo) -> RemediationPolicy | None:
        """The first policy whose trigger matches the incident, among the policies its
        deployments pin when they pin any (see ``pinned``)."""
        named = [self.pinned[d] for d in incident.deployments if d in self.pinned]
        candidates = self.policies
        if named:
            allowed = {n for n in named if n != NO_POLICY}
            candidates = [p for p in self.policies if p.name in allowed]
        return next((p for p in candidates if p.trigger.matches(incident)), None)

    def remediate(self, incident_id: int) -> list[ActionInfo]:
        """Apply the matching policy to an open incident, once.

        Returns:
            The incident's actions after this call (empty when no policy matches, the
            incident is not open, or the policy already acted on it).
        """
        incident = get_incident(self.store, incident_id)
        if incident.status != "open":
            return []
        policy = self.policy_for(incident)
        if policy is None:
            return []
        if any(a.policy == policy.name for a in list_actions(self.store, incident_id)):
            return []
        base = _base_params(incident, policy)
        if policy.dry_run:
            notify = []
            for action in policy.actions:
                live = action == "notify"
                action_id = self._create_one(
                    incident,
                    policy,
                    action,
                    _planned(base, policy, action),
                    status="approved" if live else "dry_run",
                    approved_by=f"policy:{policy.name}" if live else None,
                )
                if live:
                    notify.append(action_id)
            if notify:
                self._run(incident, notify)
        elif policy.require_approval:
            self._create(incident, policy, base, status="awaiting_approval")
            if policy.notify is not None:
                ask = self._create_one(
                    incident,
                    policy,
                    "notify",
                    {**_planned(base, policy, "notify"), "event": "awaiting_approval"},
                    status="approved",
                    approved_by=f"policy:{policy.name}",
                )
                self._run(incident, [ask])
        else:
            ids = self._create(
                incident, policy, base, status="approved", approved_by=f"policy:{policy.name}"
            )
            self._run(incident, ids)
        return list_actions(self.store, incident_id)

    def recover(self) -> list[ActionInfo]:
        """Mark ``interrupted`` the running actions whose process is gone (a controller that
        was killed), and cancel what was planned after them; nothing runs twice.

        The incident stays open for a person: ``opsloop incidents show`` tells what ran.

        Returns:
            The actions marked interrupted.
        """
        interrupted: list[ActionInfo] = []
        now = self.clock()
        for action in self.store.incidents.list_actions():
            if action.status != "running":
                continue
            runner = (action.result or {}).get("runner") or {}
            reason = gone_reason(
                runner.get("host"), runner.get("pid"), runner.get("started"), None, now, 0.0
            )
            if reason is None:
                continue
            self._set(
                action.id,
                status="interrupted",
                error=f"interrupted: {reason} while it ran; it was not run again",
                finished=True,
                event="remediation.interrupted",
            )
            interrupted.append(action)
            for later in self.store.incidents.list_actions(action.incident_id):
                if later.policy == action.policy and later.status == "approved":
                    self._set(
                        later.id,
                        status="cancelled",
                        error=f"not run: '{action.action}' was interrupted",
                        finished=True,
                        event="remediation.cancelled",
                    )
        return interrupted

    def remediate_open(self) -> dict[int, list[ActionInfo]]:
        """Apply the policies to every open incident; the actions of each one touched."""

        out = {}
        for incident in reversed(list_incidents(self.store, status="open", limit=10_000)):
            actions = self.remediate(incident.id)
            if actions:
                out[incident.id] = actions
        return out

    def approve(self, incident_id: int, *, by: str) -> list[ActionInfo]:
        """Approve the incident's parked actions and run them (guardrails are checked now).

        Raises:
            NotFoundError: There is no such incident.
            AIOpsError: Nothing of it awaits approval.
        """
        incident = get_incident(self.store, incident_id)
        parked = [
            a for a in list_actions(self.store, incident_id) if a.status == "awaiting_approval"
        ]
        if not parked:
            raise AIOpsError(
                f"incident {incident_id} has no action awaiting approval",
                hint=f"see 'opsloop incidents show {incident_id}'",
            )
        for a in parked:
            self._set(a.id, status="approved", approved_by=by, event="remediation.approved")
        for policy in dict.fromkeys(a.policy for a in parked):
            self._run(incident, [a.id for a in parked if a.policy == policy])
        return list_actions(self.store, incident_id)

    def reject(self, incident_id: int, *, by: str, reason: str = "") -> list[ActionInfo]:
        """Reject the incident's parked actions; nothing runs.

        Raises:
            AIOpsError: Nothing of it awaits approval.
        """
        get_incident(self.store, incident_id)
        parked = [
            a for a in list_actions(self.store, incident_id) if a.status == "awaiting_approval"
        ]
        if not parked:
            raise AIOpsError(f"incident {incident_id} has no action awaiting approval")
        for a in parked:
            self._set(
                a.id,
                status="rejected",
                approved_by=by,
                error=f"rejected by {by}" + (f": {reason}" if reason else ""),
                finished=True,
                event="remediation.rejected",
            )
        return list_actions(self.store, incident_id)

    # -- records -------------------------------------------------------------------------

    def _create(
        self,
        incident: IncidentInfo,
        policy: RemediationPolicy,
        base: dict[str, Any],
        *,
        status: str,
        approved_by: str | None = None,
    ) -> list[int]:
        return [
            self._create_one(
                incident,
                policy,
                action,
                _planned(base, policy, action),
                status=status,
                approved_by=approved_by,
            )
            for action in policy.actions
        ]

    def _create_one(
        self,
        incident: IncidentInfo,
        policy: RemediationPolicy,
        action: str,
        params: dict[str, Any],
        *,
        status: str,
        approved_by: str | None = None,
    ) -> int:
        return self.store.incidents.create_action(
            incident.id,
            action=action,
            status=status,
            policy=policy.name,
            created_at=self.clock(),
            approved_by=approved_by,
            params=params,
            result={"would_run": True} if status == "dry_run" else {},
            event=f"remediation.{'planned' if status == 'approved' else status}",
            event_details={"policy": policy.name},
        )

    def _set(
        self,
        action_id: int,
        *,
        status: str,
        approved_by: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        started: bool = False,
        finished: bool = False,
        event: str | None = None,
        event_details: dict[str, Any] | None = None,
    ) -> None:
        now = self.clock()
        self.store.incidents.update_action(
            action_id,
            status=status,
            approved_by=approved_by,
            result=result,
            error=error,
            started_at=now if started else None,
            finished_at=now if finished else None,
            event=event,
            event_details=event_details,
        )

    # -- guardrails ----------------------------------------------------------------------

    def _blocked(self, rows: Sequence[ActionInfo]) -> str | None:
        """Why the chain may not run now (cooldown or daily limit), or None."""
        counted = [r for r in rows if r.action != "notify"]
        if not counted:
            return None
        first = counted[0]
        guard = first.params.get("guardrails") or {}
        cooldown = float(guard.get("cooldown_s", 0))
        limit = int(guard.get("max_actions_per_day", 1_000_000))
        now = self.clock()
        since = now - max(_DAY, timedelta(seconds=cooldown))
        mine = {r.id for r in rows}
        recent = [
            a
            for a in self.store.incidents.actions_started_since(first.policy, since, _DONE)
            if a.id not in mine and a.action != "notify"
        ]
        target = first.params.get("target")
        last = max(
            (a for a in recent if a.params.get("target") == target and a.started_at is not None),
            key=lambda a: a.started_at or now,
            default=None,
        )
        if last is not None and last.started_at is not None:
            ago = (now - (_aware(last.started_at) or now)).total_seconds()
            if ago < cooldown:
                return (
                    f"cooldown: policy '{first.policy}' ran '{last.action}' on {target} "
                    f"{ago:.0f}s ago (incident {last.incident_id}); cooldown_s is {cooldown:g}"
                )
        today = [a for a in recent if (_aware(a.started_at) or now) >= now - _DAY]
        if len(today) + len(counted) > limit:
            return (
                f"daily limit: policy '{first.policy}' ran {len(today)} action(s) in the last "
                f"24 h; {len(counted)} more would pass max_actions_per_day={limit}"
            )
        return None

    # -- running -------------------------------------------------------------------------

    def _run(self, incident: IncidentInfo, action_ids: Sequence[int]) -> None:
        wanted = set(action_ids)
        rows = [a for a in list_actions(self.store, incident.id) if a.id in wanted]
        blocked = self._blocked(rows)
        outcomes: list[Outcome] = []
        failed: ActionInfo | None = None
        live_canaries: list[tuple[ActionInfo, ActionResult]] = []
        for row in rows:
            if row.action != "notify" and (blocked or failed):
                reason = blocked or f"not run: '{failed.action if failed else ''}' failed"
                status = "skipped" if blocked else "cancelled"
                self._set(
                    row.id,
                    status=status,
                    error=reason,
                    finished=True,
                    event=f"remediation.{status}",
                )
                outcomes.append(Outcome(row.action, status, error=reason))
                continue
            self._set(
                row.id,
                status="running",
                started=True,
                result={"runner": this_process().as_dict()},
                event="remediation.started",
            )
            try:
                context = _context(
                    incident, row.action, row.id, row.policy, row.params, tuple(outcomes)
                )
                result = self._call(row.action, context)
            except Exception as exc:
                # Whatever the action raises, it is recorded as failed with its message: a
                # remediation must never leave an action 'running' behind.
                error = _describe_error(exc)
                undo: dict[str, Any] = {}
                if row.action != "notify":
                    failed = row
                    undo = self._compensate(incident, row, live_canaries, error, outcomes)
                    live_canaries.clear()
                state = _state_after(row.action, outcomes, undo)
                self._set(
                    row.id,
                    status="failed",
                    error=f"{error}; {state}",
                    result={"serving_unchanged": state.startswith("serving unchanged"), **undo},
                    finished=True,
                    event="remediation.failed",
                    event_details={"state": state},
                )
                outcomes.append(Outcome(row.action, "failed", error=error, state=state))
                continue
            self._set(
                row.id,
                status="succeeded",
                result=_stored(result),
                finished=True,
                event="remediation.succeeded",
            )
            outcomes.append(Outcome(row.action, "succeeded", result=result))
            if row.action == "canary":
                live_canaries.append((row, result))
            elif row.action in _HEALS:
                live_canaries.clear()
        if not (blocked or failed):
            self._resolve_if_healed(incident, rows)

    def _call(self, name: str, context: ActionContext) -> ActionResult:
        action = self.actions.get(name)
        run: Callable[[ActionContext], object]
        if isinstance(action, BuiltinAction):
            run = getattr(self.executor, name)
            where = f"executor {type(self.executor).__name__}.{name}"
        else:
            run = action
            where = f"action '{name}'"
        result = run(context)
        if not isinstance(result, ActionResult):
            raise AIOpsError(f"{where} returned {type(result).__name__}, not an ActionResult")
        if name == "canary" and result.details.get("held") is False:
            why = result.details.get("reason") or "its metric dropped too far"
            raise AIOpsError(f"canary did not hold: {why}")
        return result

    def _resolve_if_healed(self, incident: IncidentInfo, rows: Sequence[ActionInfo]) -> None:
        """Resolve the incident when its chain succeeded and changed what serves."""
        policy = next((p for p in self.policies if rows and p.name == rows[0].policy), None)
        if policy is None or not policy.resolve_on_success:
            return
        healed = [r.action for r in rows if r.action in _HEALS]
        if not healed or get_incident(self.store, incident.id).status != "open":
            return
        resolve(
            self.store,
            incident.id,
            note=f"remediated: policy '{policy.name}' ran {', '.join(r.action for r in rows)}",
            by=f"policy:{policy.name}",
        )

    def _compensate(
        self,
        incident: IncidentInfo,
        failed: ActionInfo,
        live_canaries: list[tuple[ActionInfo, ActionResult]],
        error: str,
        outcomes: list[Outcome],
    ) -> dict[str, Any]:
        """Withdraw canaries that went live before a later action failed."""
        undo: dict[str, Any] = {}
        for canary, result in live_canaries:
            params = {
                **{k: v for k, v in canary.params.items() if k not in ("settings", "canary")},
                "settings": RollbackSettings().model_dump(mode="json"),
                "compensates": {"action_id": canary.id, "result": result.to_json()},
                "reason": f"'{failed.action}' failed: {error}",
            }
            rollback_id = self.store.incidents.create_action(
                incident.id,
                action="rollback",
                status="running",
                policy=canary.policy,
                created_at=self.clock(),
                started_at=self.clock(),
                approved_by=f"policy:{canary.policy}",
                params=params,
                event="remediation.compensating",
                event_details={"undoes": canary.id},
            )
            try:
                context = _context(
                    incident, "rollback", rollback_id, canary.policy, params, tuple(outcomes)
                )
                res = self._call("rollback", context)
            except Exception as exc:
                # Reported, not raised: the chain's record must be completed either way.
                msg = _describe_error(exc)
                self._set(
                    rollback_id,
                    status="failed",
                    error=f"{msg}; the canary of action {canary.id} may still be live",
                    finished=True,
                    event="remediation.failed",
                )
                undo = {"compensated_by": rollback_id, "compensation_failed": msg}
                outcomes.append(Outcome("rollback", "failed", error=msg))
                return undo
            self._set(
                rollback_id,
                status="succeeded",
                result=_stored(res),
                finished=True,
                event="remediation.succeeded",
            )
            outcomes.append(Outcome("rollback", "succeeded", result=res))
            undo = {"compensated_by": rollback_id}
        return undo


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, OpsloopError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _stored(result: ActionResult) -> dict[str, Any]:
    """The result as the store keeps it. Details that are not JSON are left out, saying so:
    the action has run by then, and its record must say that it succeeded."""
    data = result.to_json()
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        data = ActionResult(
            did=result.did, model=result.model, version=result.version, commits=result.commits
        ).to_json()
        data["details_not_stored"] = f"not JSON: {exc}"
    return data


def _state_after(action: str, outcomes: Sequence[Outcome], undo: dict[str, Any]) -> str:
    if action == "notify":
        return "serving unchanged (a notification changes nothing)"
    if "compensation_failed" in undo:
        return "serving CHANGED: the canary could not be withdrawn; act by hand"
    # An installed distribution's action that succeeded may have changed serving.
    changed = [
        o.action
        for o in outcomes
        if o.status == "succeeded" and (o.action in _HEALS or o.action not in ACTIONS)
    ]
    if undo.get("compensated_by"):
        return f"serving unchanged (the canary was withdrawn by action {undo['compensated_by']})"
    if changed:
        return f"serving changed earlier in the chain by {', '.join(changed)}"
    return "serving unchanged"


def _base_params(incident: IncidentInfo, policy: RemediationPolicy) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "kind": incident.kind,
        "root_cause": incident.root_cause,
        **incident_subject(incident),
        "dry_run": policy.dry_run,
        "guardrails": {
            "cooldown_s": policy.cooldown_s,
            "max_actions_per_day": policy.max_actions_per_day,
        },
    }


def _planned(base: dict[str, Any], policy: RemediationPolicy, action: str) -> dict[str, Any]:
    """An action's recorded parameters: what it acts on, and its settings (``${VAR}``
    references unexpanded, so no secret reaches the store)."""
    settings = policy.settings_for(action)
    dumped = settings.model_dump(mode="json") if isinstance(settings, BaseModel) else settings
    return {**base, "settings": dumped}


def _recorded_settings(action: str, params: Mapping[str, Any]) -> ActionSettings:
    """An action's settings as recorded when it was planned.

    Rows written before ``settings`` was recorded kept a built-in's section under its own key
    (``canary`` for ``promote``) and a notification's flat.

    Raises:
        AIOpsError: The recorded settings do not fit the action's section.
    """
    if "settings" in params:
        data = params["settings"]
    elif action == "notify":
        data = {k: params[k] for k in ("webhook", "headers", "timeout_s") if k in params}
    else:
        data = params.get("canary" if action == "promote" else action)
    if data is not None and not isinstance(data, Mapping):
        raise AIOpsError(
            f"the recorded settings of '{action}' are a {type(data).__name__}, not a mapping",
            hint="reject the action and let the policy plan it again",
        )
    section = BUILTIN_SETTINGS.get(action)
    if section is None:
        return dict(data or {})
    try:
        settings: ActionSettings = section.model_validate(data or {})  # type: ignore[assignment]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise AIOpsError(
            f"the recorded settings of '{action}' do not fit {section.__name__}: "
            f"{where}: {first['msg']}",
            hint="reject the action and let the policy plan it again",
        ) from exc
    return settings


def _context(
    incident: IncidentInfo,
    action: str,
    action_id: int,
    policy: str,
    params: Mapping[str, Any],
    outcomes: tuple[Outcome, ...],
) -> ActionContext:
    """The context of a recorded action: what it acts on as planned, the chain so far."""
    compensates = None
    undo = params.get("compensates")
    if isinstance(undo, Mapping):
        compensates = Compensation(
            action_id=int(undo.get("action_id") or 0),
            result=ActionResult.from_json(undo.get("result")),
            reason=str(params.get("reason") or ""),
        )
    deployment = params.get("deployment")
    model = params.get("model")
    version = params.get("version")
    return ActionContext(
        action=action,
        action_id=action_id,
        incident=incident,
        policy=policy,
        target=str(params.get("target") or f"incident:{incident.id}"),
        deployment=str(deployment) if deployment else None,
        deployments=tuple(str(d) for d in params.get("deployments") or ()),
        model=str(model) if model else None,
        version=version if isinstance(version, int) else None,
        settings=_recorded_settings(action, params),
        dry_run=bool(params.get("dry_run")),
        previous={o.action: o.result for o in outcomes if o.result is not None},
        outcomes=outcomes,
        event=str(params.get("event") or "remediation"),
        compensates=compensates,
    )


# -- module-level entry points for the CLI and the API ----------------------------------------


def approve(
    store: Store,
    incident_id: int,
    executor: ActionExecutor,
    *,
    by: str,
    clock: Callable[[], datetime] | None = None,
) -> list[ActionInfo]:
    """Approve an incident's parked actions and run them (see :meth:`RemediationEngine.approve`).

    The actions run as they were planned: their parameters and guardrails were recorded with
    them, so no policy is needed here.
    """
    engine = RemediationEngine(store, executor, clock=clock)
    return engine.approve(incident_id, by=by)


def reject(store: Store, incident_id: int, *, by: str, reason: str = "") -> list[ActionInfo]:
    """Reject an incident's parked actions (see :meth:`RemediationEngine.reject`)."""
    # Rejecting runs nothing: no executor is needed beyond the placeholder.
    return RemediationEngine(store, WebhookExecutor()).reject(incident_id, by=by, reason=reason)
