"""Remediation actions for cost incidents, registered with the other remediation actions.

``scale_to_minimum``
    Commits the incident's deployment down to its minimum replicas (``objectives.
    min_replicas`` of its document, or the policy's ``settings: {scale_to_minimum:
    {replicas: N}}``); the reconciler applies the commit. Pair it with ``notify`` so that
    people hear of it::

        remediation:
          policies:
            - name: cost-guard
              on: {kinds: [cost_anomaly]}
              actions: [scale_to_minimum, notify]
              notify: {webhook: "https://chat.example/hooks/finops"}

``pause_schedules``
    Pauses the schedules of ``opsloop.yaml`` (all of them, or the policy's ``settings:
    {pause_schedules: {schedules: [nightly], hours: 24}}``) for a number of hours (default
    24): a retrain storm stops starting runs while people look. Each due time in the pause is
    recorded as a skipped run that names the incident.

``scale_to_minimum`` runs as the remediation engine's service account
(``access.remediation``): its role must allow deploying to the deployment, and the commit
names it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsloop.aiops.actions import REMEDIATION_ACTIONS, ActionContext, ActionResult
from opsloop.context import current_project
from opsloop.errors import AIOpsError
from opsloop.gitops import DEFAULT_FOLDER, GitRepo, load_desired_state, resize
from opsloop.lifecycle.schedules import pause_schedules as pause
from opsloop.secops.access import authorize
from opsloop.secops.policy import access_policy, deployment_action, remediation_identity
from opsloop.store.acting import acting

__all__ = ["COST_ACTIONS", "pause_schedules", "scale_to_minimum"]

#: How long ``pause_schedules`` pauses by default.
DEFAULT_PAUSE_HOURS = 24.0


def scale_to_minimum(context: ActionContext) -> ActionResult:
    """Scale the incident's deployment down to its minimum replicas (see the module).

    Raises:
        AIOpsError: The incident names no deployment, or it has no valid document.
    """
    deployment = context.deployment
    if not deployment:
        raise AIOpsError(f"incident {context.incident.id} names no deployment to scale down")
    project = current_project()
    repo = GitRepo(project.dir)
    state = load_desired_state(repo, repo.relpath(project.dir / DEFAULT_FOLDER))
    loaded = state.documents.get(deployment)
    if loaded is None:
        raise AIOpsError(f"deployment '{deployment}' has no valid document at HEAD")
    settings = context.settings if isinstance(context.settings, dict) else {}
    minimum = int(settings.get("replicas", loaded.document.spec.objectives.min_replicas))
    before = loaded.document.spec.replicas
    if context.dry_run or before <= minimum:
        verb = "would scale" if context.dry_run else "left"
        return ActionResult(
            did=f"{verb} {deployment} at {min(before, minimum)} replica(s) (minimum {minimum})",
            details={"deployment": deployment, "replicas": before, "minimum": minimum},
        )
    policy = access_policy(project)
    account = remediation_identity(policy)
    action = deployment_action(deployment, policy, labels=dict(loaded.document.metadata.labels))
    authorize(account, action, resource_type="deployment", resource=deployment)
    with acting(account.name, source="loop"):
        change = resize(
            deployment,
            replicas=minimum,
            reason=f"Cost incident {context.incident.id}: {context.incident.title}.",
            project=project,
        )
    return ActionResult(
        did=f"scaled {deployment} from {before} to {minimum} replica(s)",
        commits=(change.commit,) if change.commit else (),
        details={"deployment": deployment, "replicas": before, "minimum": minimum},
    )


def pause_schedules(context: ActionContext) -> ActionResult:
    """Pause the project's schedules (see the module).

    Raises:
        AIOpsError: The settings are not ``{schedules: [names], hours: N}``.
        ConfigError: A named schedule is not in ``opsloop.yaml``.
    """
    project = current_project()
    settings = context.settings if isinstance(context.settings, dict) else {}
    declared = sorted(project.spec.schedules) if project.spec is not None else []
    names = settings.get("schedules", declared)
    hours = settings.get("hours", DEFAULT_PAUSE_HOURS)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AIOpsError("pause_schedules: 'schedules' must be a list of schedule names")
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 90:
        raise AIOpsError(
            f"pause_schedules: 'hours' must be a number of hours up to 2160, got {hours!r}"
        )
    until = datetime.now(UTC) + timedelta(hours=float(hours))
    if not names:
        return ActionResult(did="no schedules to pause", details={"schedules": []})
    listed = ", ".join(names)
    if context.dry_run:
        return ActionResult(
            did=f"would pause {listed} for {hours:g} h", details={"schedules": names}
        )
    why = f"incident {context.incident.id}: {context.incident.title}"
    paused = pause(project, names, until, why)
    return ActionResult(
        did=f"paused {listed} until {until:%Y-%m-%d %H:%M} UTC",
        details={"schedules": paused, "until": until.isoformat()},
    )


COST_ACTIONS = {"scale_to_minimum": scale_to_minimum, "pause_schedules": pause_schedules}
"""The cost actions by name."""

for _name, _action in COST_ACTIONS.items():
    if _name not in REMEDIATION_ACTIONS.names():
        REMEDIATION_ACTIONS.register(_name, _action)
