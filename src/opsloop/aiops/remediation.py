"""Remediation: policies that map incident kinds to actions, with guardrails and approval.

Policies are declared in ``opsloop.yaml``::

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
incident and runs its actions in order through an :class:`ActionExecutor`; the concrete
effects (retraining through the lifecycle and its gates, canary, promotion and rollback
through Git commits) belong to the executor. Around them the engine keeps the guardrails:

* **cooldown** — no action of the policy on the same target (the incident's deployments)
  within ``cooldown_s`` of the last one;
* **daily limit** — at most ``max_actions_per_day`` actions of the policy in 24 hours;
* **dry run** — record what would run (``dry_run``), run nothing; notifications still go out,
  marked as a dry run, since they are how people see what would have happened;
* **approval** — park the actions (``awaiting_approval``) until ``opsloop incidents approve``.

An action that fails stops the chain: the actions after it are cancelled (a ``notify`` still
runs, to tell people), and a canary that went live before the failure is withdrawn by a
compensating ``rollback``, so serving is left as it was; the failure's record says whether it
is. Every action and every change of its status is an audit event on the incident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opsloop.aiops.incidents import get_incident, list_actions, resolve
from opsloop.errors import AIOpsError, MissingDependencyError, OpsloopError
from opsloop.spec.loader import load_section
from opsloop.spec.remediation import (
    ACTIONS,
    ENV_REFERENCE,
    CanarySettings,
    NotifySettings,
    PolicyTrigger,
    RemediationPolicy,
    RemediationSection,
)
from opsloop.store.liveness import gone_reason, this_process
from opsloop.store.types import ActionInfo, IncidentInfo

if TYPE_CHECKING:
    import httpx

    from opsloop.store import Store

__all__ = [
    "ACTIONS",
    "ActionExecutor",
    "CanarySettings",
    "NotifySettings",
    "PolicyTrigger",
    "RemediationEngine",
    "RemediationPolicy",
    "RemediationSection",
    "WebhookExecutor",
    "approve",
    "load_remediation_section",
    "reject",
]

# Actions that change what is served; the daily limit and the cooldown count these.
_EFFECTFUL = frozenset({"retrain", "canary", "promote", "rollback"})
_DONE = ("running", "succeeded", "failed", "interrupted")
NO_POLICY = "none"
"""What a deployment's ``spec.remediation`` says to keep every policy off it."""
_DAY = timedelta(days=1)


def _expand_env(value: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise AIOpsError(
                f"environment variable {name} is not set (it is named in a notify setting)",
                hint=f"export {name}=...",
            )
        return os.environ[name]

    return ENV_REFERENCE.sub(sub, value)


def load_remediation_section(path: Path) -> RemediationSection:
    """The ``remediation`` section of ``opsloop.yaml`` (empty when absent).

    Raises:
        SpecError: It is invalid; the message names file, line and field.
    """
    return load_section(path, "remediation", RemediationSection)


# -- executors ---------------------------------------------------------------------------------


class ActionExecutor(Protocol):
    """Does the actual work of each action. Each method gets the incident and the action's
    parameters and returns a JSON-ready dict that is stored as the action's result; raising
    marks the action failed with the exception's message.

    The parameters hold ``incident_id``, ``kind``, ``root_cause``, ``target``,
    ``deployments``, ``deployment`` (the first), ``models``, ``model`` and ``version`` (when
    the root cause is a model version), ``dry_run``, the action's own settings, ``previous``
    (results of the earlier actions of the chain, by action name) and ``outcomes`` (every
    earlier action's name, status, result or error).
    """

    def retrain(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Retrain through the lifecycle pipeline and its gates; return the new version
        (``{"model": ..., "version": ...}``). Raise when the gates refuse it."""
        ...

    def canary(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Commit a canary split (``params["canary"]``) for the new version
        (``params["previous"]["retrain"]``, or the deployment's challenger), hold and judge
        it; return ``{"held": bool, ...}``. A canary that does not hold must be withdrawn
        before returning."""
        ...

    def promote(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Commit the canary's version as the deployment's full traffic."""
        ...

    def rollback(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Revert the deployment's last change in Git (``params["compensates"]`` names a
        canary to withdraw, when the engine undoes one)."""
        ...

    def notify(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Tell people (``params["webhook"]``); ``params["event"]`` says why."""
        ...


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{'/…' if parts.path not in ('', '/') else ''}"


class WebhookExecutor:
    """Sends ``notify`` as an HTTP POST of JSON and hands every other action to a delegate.

    Args:
        delegate: The executor of ``retrain``, ``canary``, ``promote`` and ``rollback`` (the
            lifecycle and GitOps actions); without one those actions fail, saying so.
        transport: An httpx transport (tests, proxies); default: the network.
    """

    def __init__(
        self,
        delegate: ActionExecutor | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.delegate = delegate
        self.transport = transport

    def _delegate(self, action: str) -> ActionExecutor:
        if self.delegate is None:
            raise AIOpsError(
                f"no executor for '{action}' is configured: only 'notify' can run",
                hint="give the remediation engine an executor with the lifecycle and GitOps "
                "actions",
            )
        return self.delegate

    def retrain(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Delegate."""
        return self._delegate("retrain").retrain(incident, params)

    def canary(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Delegate."""
        return self._delegate("canary").canary(incident, params)

    def promote(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Delegate."""
        return self._delegate("promote").promote(incident, params)

    def rollback(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Delegate."""
        return self._delegate("rollback").rollback(incident, params)

    def notify(self, incident: IncidentInfo, params: dict[str, Any]) -> dict[str, Any]:
        """POST the incident, the event and the chain's outcomes to the webhook.

        Raises:
            AIOpsError: The webhook is unreachable or answers with an error status.
        """
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx ships with the serve extra
            raise MissingDependencyError("httpx", "serve") from exc
        url = _expand_env(str(params["webhook"]))
        headers = {k: _expand_env(v) for k, v in (params.get("headers") or {}).items()}
        payload = {
            "event": params.get("event", "remediation"),
            "policy": params.get("policy"),
            "dry_run": bool(params.get("dry_run")),
            "incident": incident.model_dump(mode="json"),
            "outcomes": params.get("outcomes", []),
        }
        shown = _redact(url)
        try:
            with httpx.Client(
                timeout=float(params.get("timeout_s", 5)), transport=self.transport
            ) as client:
                response = client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise AIOpsError(f"webhook {shown} is unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise AIOpsError(
                f"webhook {shown} answered {response.status_code}: {response.text[:200]}"
            )
        return {"status_code": response.status_code, "webhook": shown}


# -- the engine --------------------------------------------------------------------------------


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
        executor: Does the work of each action.
        policies: The policies, first match wins.
        clock: The current time (tests move it to cross cooldowns and days).
        pinned: The policy a deployment's document names (``spec.remediation``), by
            deployment; ``none`` keeps every policy off it. An incident on a deployment that
            names a policy is remediated by that policy only (when its trigger matches).
    """

    def __init__(
        self,
        store: Store,
        executor: ActionExecutor,
        policies: RemediationSection | Sequence[RemediationPolicy] = (),
        *,
        clock: Callable[[], datetime] | None = None,
        pinned: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.policies = list(
            policies.policies if isinstance(policies, RemediationSection) else policies
        )
        self.clock = clock or _utcnow
        self.pinned = dict(pinned or {})

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
                    {**base, **_action_params(policy, action)},
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
                    {**base, **_notify_params(policy), "event": "awaiting_approval"},
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
        from opsloop.aiops.incidents import list_incidents

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
                {**base, **_action_params(policy, action)},
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
        effectful = [r for r in rows if r.action in _EFFECTFUL]
        if not effectful:
            return None
        first = effectful[0]
        guard = first.params.get("guardrails") or {}
        cooldown = float(guard.get("cooldown_s", 0))
        limit = int(guard.get("max_actions_per_day", 1_000_000))
        now = self.clock()
        since = now - max(_DAY, timedelta(seconds=cooldown))
        mine = {r.id for r in rows}
        recent = [
            a
            for a in self.store.incidents.actions_started_since(first.policy, since, _DONE)
            if a.id not in mine and a.action in _EFFECTFUL
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
        if len(today) + len(effectful) > limit:
            return (
                f"daily limit: policy '{first.policy}' ran {len(today)} action(s) in the last "
                f"24 h; {len(effectful)} more would pass max_actions_per_day={limit}"
            )
        return None

    # -- running -------------------------------------------------------------------------

    def _run(self, incident: IncidentInfo, action_ids: Sequence[int]) -> None:
        wanted = set(action_ids)
        rows = [a for a in list_actions(self.store, incident.id) if a.id in wanted]
        blocked = self._blocked(rows)
        outcomes: list[dict[str, Any]] = []
        failed: ActionInfo | None = None
        live_canaries: list[tuple[ActionInfo, dict[str, Any]]] = []
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
                outcomes.append({"action": row.action, "status": status, "error": reason})
                continue
            params = {
                **row.params,
                "policy": row.policy,
                "previous": {
                    o["action"]: o.get("result", {}) for o in outcomes if o["status"] == "succeeded"
                },
                "outcomes": list(outcomes),
            }
            self._set(
                row.id,
                status="running",
                started=True,
                result={"runner": this_process().as_dict()},
                event="remediation.started",
            )
            try:
                result = _call(self.executor, row.action, incident, params)
            except Exception as exc:
                # Whatever the executor raises, the action is recorded as failed with its
                # message: a remediation must never leave an action 'running' behind.
                error = _describe_error(exc)
                outcome: dict[str, Any] = {"action": row.action, "status": "failed", "error": error}
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
                outcome["state"] = state
                outcomes.append(outcome)
                continue
            self._set(
                row.id,
                status="succeeded",
                result=result,
                finished=True,
                event="remediation.succeeded",
            )
            outcomes.append({"action": row.action, "status": "succeeded", "result": result})
            if row.action == "canary":
                live_canaries.append((row, result))
            elif row.action in ("promote", "rollback"):
                live_canaries.clear()
        if not (blocked or failed):
            self._resolve_if_healed(incident, rows)

    def _resolve_if_healed(self, incident: IncidentInfo, rows: Sequence[ActionInfo]) -> None:
        """Resolve the incident when its chain succeeded and changed what serves."""
        policy = next((p for p in self.policies if rows and p.name == rows[0].policy), None)
        if policy is None or not policy.resolve_on_success:
            return
        healed = [r.action for r in rows if r.action in ("promote", "rollback")]
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
        live_canaries: list[tuple[ActionInfo, dict[str, Any]]],
        error: str,
        outcomes: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Withdraw canaries that went live before a later action failed."""
        undo: dict[str, Any] = {}
        for canary, result in live_canaries:
            params = {
                **{k: v for k, v in canary.params.items() if k not in ("canary",)},
                "policy": canary.policy,
                "compensates": {"action_id": canary.id, "result": result},
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
                res = _call(self.executor, "rollback", incident, params)
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
                outcomes.append({"action": "rollback", "status": "failed", "error": msg})
                return undo
            self._set(
                rollback_id,
                status="succeeded",
                result=res,
                finished=True,
                event="remediation.succeeded",
            )
            outcomes.append({"action": "rollback", "status": "succeeded", "result": res})
            undo = {"compensated_by": rollback_id}
        return undo


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, OpsloopError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _call(
    executor: ActionExecutor, action: str, incident: IncidentInfo, params: dict[str, Any]
) -> dict[str, Any]:
    if action not in ACTIONS:
        raise AIOpsError(f"unknown remediation action {action!r}; actions: {', '.join(ACTIONS)}")
    method: Callable[[IncidentInfo, dict[str, Any]], Any] = getattr(executor, action)
    result = method(incident, params)
    if not isinstance(result, dict):
        raise AIOpsError(
            f"executor {type(executor).__name__}.{action} returned {type(result).__name__}, "
            "not a dict"
        )
    if action == "canary" and result.get("held") is False:
        why = result.get("reason") or "its metric dropped too far"
        raise AIOpsError(f"canary did not hold: {why}")
    return result


def _state_after(action: str, outcomes: list[dict[str, Any]], undo: dict[str, Any]) -> str:
    if action == "notify":
        return "serving unchanged (a notification changes nothing)"
    if "compensation_failed" in undo:
        return "serving CHANGED: the canary could not be withdrawn; act by hand"
    changed = [
        o["action"]
        for o in outcomes
        if o["status"] == "succeeded" and o["action"] in ("promote", "rollback")
    ]
    if undo.get("compensated_by"):
        return f"serving unchanged (the canary was withdrawn by action {undo['compensated_by']})"
    if changed:
        return f"serving changed earlier in the chain by {', '.join(changed)}"
    return "serving unchanged"


def _base_params(incident: IncidentInfo, policy: RemediationPolicy) -> dict[str, Any]:
    root = incident.root_cause
    model = version = None
    if root and root.startswith("model:"):
        model, _, version = root[6:].rpartition("/")
    deployments = incident.deployments
    return {
        "incident_id": incident.id,
        "kind": incident.kind,
        "root_cause": root,
        "target": ",".join(deployments) or root or f"incident:{incident.id}",
        "deployments": deployments,
        "deployment": deployments[0] if deployments else None,
        "models": incident.models,
        "model": model or (incident.models[0] if len(incident.models) == 1 else None),
        "version": int(version) if version and version.isdigit() else None,
        "dry_run": policy.dry_run,
        "guardrails": {
            "cooldown_s": policy.cooldown_s,
            "max_actions_per_day": policy.max_actions_per_day,
        },
    }


def _notify_params(policy: RemediationPolicy) -> dict[str, Any]:
    if policy.notify is None:  # pragma: no cover - the policy validator requires it
        raise AIOpsError(f"policy '{policy.name}' has no notify setting")
    return {
        "webhook": policy.notify.webhook,
        "headers": dict(policy.notify.headers),
        "timeout_s": policy.notify.timeout_s,
        "event": "remediation",
    }


def _action_params(policy: RemediationPolicy, action: str) -> dict[str, Any]:
    if action == "retrain":
        return {"retrain": dict(policy.retrain)}
    if action in ("canary", "promote"):
        return {"canary": policy.canary.model_dump()}
    if action == "rollback":
        return {"rollback": dict(policy.rollback)}
    return _notify_params(policy)


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
