"""The remediation actions for real: retrain through the lifecycle, canary, promote and
rollback through Git commits and a sync.

:class:`LoopExecutor` implements :class:`~opsloop.aiops.executors.ActionExecutor`:

* ``retrain`` builds a training table from the deployment's recent labelled predictions (the
  prediction log joined with the feedback labels), optionally after the original training
  data, writes it to ``data/retrain/<incident>.parquet`` and runs the declared lifecycle on it,
  so the new version goes through the same gates; a refused version changes no alias;
* ``canary`` commits a split ``{old: 100 - w, new: w}``, syncs, watches the deployment's
  prediction log for ``hold_s`` and ``min_requests`` and judges the new version's quality
  against the old one's on the rows labelled meanwhile; a canary that does not hold is
  withdrawn (a revert commit and a sync) before it returns;
* ``promote`` commits the new version as the full traffic and syncs;
* ``rollback`` reverts the deployment's last change in Git and syncs;
* ``notify`` is the :class:`~opsloop.aiops.executors.WebhookExecutor`'s.

Every action gets its :class:`~opsloop.aiops.actions.ActionContext` and returns an
:class:`~opsloop.aiops.actions.ActionResult` — what it did, the version, the commits, and
details (counts, the canary's verdict) — which the engine records.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from opsloop.aiops.actions import ActionContext, ActionResult
from opsloop.aiops.executors import ActionExecutor, WebhookExecutor
from opsloop.aiops.incidents import incident_alerts
from opsloop.context import Project, current_project
from opsloop.data import resolve_source
from opsloop.data.sources import read_data
from opsloop.errors import AIOpsError, DataError, NotFoundError, OpsloopError
from opsloop.gitops import (
    DEFAULT_FOLDER,
    GitRepo,
    HealthStatus,
    Reconciler,
    load_desired_state,
    promote,
    rollback,
    set_traffic,
)
from opsloop.lifecycle import run_lifecycle
from opsloop.ml.metrics import metric_direction
from opsloop.monitor.quality import quality_metrics
from opsloop.monitor.windows import (
    LABEL,
    REQUEST_ID,
    REQUEST_TIME,
    VERSION,
    load_window,
    utc,
)
from opsloop.secops.access import authorize
from opsloop.secops.policy import access_policy, deployment_action, remediation_identity
from opsloop.spec.remediation import CanarySettings, RetrainSettings
from opsloop.store.acting import acting

if TYPE_CHECKING:
    from collections.abc import Callable

    _Action = Callable[["LoopExecutor", ActionContext], ActionResult]

    from opsloop.gitops import LoadedDocument, Runtime

__all__ = ["RETRAIN_FOLDER", "LoopExecutor", "build_retrain_table", "default_executor"]

RETRAIN_FOLDER = "data/retrain"
"""Where retraining tables are written, relative to the project."""

# Labels a canary's versions each need before their quality is compared: fewer rows give a
# metric too noisy to judge by.
_MIN_LABELLED = 30


def _as_remediation(kind: Literal["register", "deploy"]) -> Callable[[_Action], _Action]:
    """Run an action as the remediation engine's service account (``access.remediation`` in
    ``opsloop.yaml``): its role must allow the action, and every change it makes (store
    events, Git commits) is recorded as that account, from the loop."""

    def wrap(method: _Action) -> _Action:
        @functools.wraps(method)
        def run(self: LoopExecutor, context: ActionContext) -> ActionResult:
            policy = access_policy(self.project)
            account = remediation_identity(policy)
            if kind == "register":
                authorize(account, "register")
            else:
                deployment = self._deployment(context)
                action = deployment_action(deployment, policy, labels=self._labels(deployment))
                authorize(account, action, resource_type="deployment", resource=deployment)
            with acting(account.name, source="loop"):
                return method(self, context)

        return run

    return wrap


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_retrain_table(
    project: Project,
    deployment: str,
    since: datetime,
    until: datetime,
    *,
    include_original: bool = False,
) -> pd.DataFrame:
    """The training table of a retrain: the deployment's labelled predictions in a window.

    Rows are the predictions made in ``[since, until)`` whose label has arrived, with the
    label as the target column. Columns of the original data that the server does not see
    are filled in: the time column with the request time, a dropped column (an id) with the
    request id. Column types follow the original data so its contract still applies.

    Args:
        project: The project (its spec names target, time column and data source).
        deployment: The deployment whose prediction log is read.
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        include_original: Put the original training data first.

    Raises:
        DataError: No labelled row in the window, or a column of the original data can be
            neither read from the log nor filled in.
    """
    spec = project.spec
    if spec is None or spec.problem is None or spec.data is None:
        raise DataError(f"{project.dir / 'opsloop.yaml'} declares no lifecycle to retrain with")
    target = spec.problem.target
    if isinstance(spec.data.source, str):
        files = resolve_source(spec.data.source, base_dir=project.dir)
        original = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    else:
        original = read_data(project, spec.data)
    win = load_window(project.store, deployment, since, until, artifacts=project.artifacts)
    rows = win.rows
    if not rows.empty:
        rows = rows[rows[LABEL].notna()]
    if rows.empty:
        raise DataError(
            f"deployment '{deployment}' has no labelled prediction between "
            f"{since:%Y-%m-%d %H:%M:%S} and {until:%Y-%m-%d %H:%M:%S} UTC to retrain on",
            hint="send feedback labels to POST /v1/feedback, or widen retrain.window_s",
        )
    out: dict[str, Any] = {}
    for column in original.columns:
        name = str(column)
        if name == target:
            values: Any = rows[LABEL]
        elif name in rows.columns:
            values = rows[name]
        elif name == spec.data.time_column:
            values = rows[REQUEST_TIME].dt.tz_convert(None)
        elif name in spec.features.drop:
            # One id per row: a request of several rows shares its request id.
            position = rows.groupby(REQUEST_ID).cumcount().astype(str)
            values = "req-" + rows[REQUEST_ID].astype(str) + "-" + position
        else:
            raise DataError(
                f"column '{name}' of the training data is not in the prediction log of "
                f"deployment '{deployment}' and cannot be filled in",
                hint="log every model input (the server's log_inputs setting)",
            )
        try:
            out[name] = pd.Series(list(values)).astype(original[column].dtype)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"column '{name}' of deployment '{deployment}''s prediction log does not fit "
                f"the training data's type {original[column].dtype}: {exc}"
            ) from exc
    table = pd.DataFrame(out, columns=list(original.columns))
    if include_original:
        table = pd.concat([original, table], ignore_index=True)
    return table


class LoopExecutor:
    """Runs remediation actions on a project: the lifecycle for ``retrain``, Git commits and
    a sync for ``canary``, ``promote`` and ``rollback``, a webhook for ``notify``.

    Args:
        project: The project.
        runtime: The runtime the deployments are synced to (a name or a runtime).
        folder: The folder of the deployment documents, relative to the project.
        reconciler: The reconciler to sync with (default: a new one over ``runtime``); the
            loop controller hands over its own, so one runtime holds every server.
        poll_s: How often a canary reads the prediction log.
        canary_timeout_s: How long a canary waits beyond ``hold_s`` for ``min_requests``.
        progress: Show the lifecycle's live display while retraining.
        clock: The current time (UTC); a canary's window starts at it.
        sleep: Waits between a canary's polls.
    """

    def __init__(
        self,
        project: Project,
        *,
        runtime: Runtime | str = "local",
        folder: str = DEFAULT_FOLDER,
        reconciler: Reconciler | None = None,
        poll_s: float = 1.0,
        canary_timeout_s: float = 120.0,
        progress: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project = project
        self.runtime = runtime
        self.folder = folder
        self._reconciler = reconciler
        self.poll_s = poll_s
        self.canary_timeout_s = canary_timeout_s
        self.progress = progress
        self.clock = clock
        self.sleep = sleep

    # -- helpers ---------------------------------------------------------------------------

    def _deployment(self, context: ActionContext) -> str:
        if not context.deployment:
            raise AIOpsError(
                f"incident {context.incident.id} names no deployment to act on",
                hint="alert rules should carry a 'deployment' label",
            )
        return context.deployment

    def _loaded(self, deployment: str) -> LoadedDocument | None:
        """The deployment's valid document at HEAD, if it has one."""
        repo = GitRepo(self.project.dir)
        state = load_desired_state(repo, repo.relpath(self.project.dir / self.folder))
        return state.documents.get(deployment)

    def _document(self, deployment: str) -> tuple[str, int, dict[int, float]]:
        """The model, main version and traffic split Git holds for a deployment now."""
        loaded = self._loaded(deployment)
        if loaded is None:
            raise NotFoundError(
                f"deployment '{deployment}' has no valid document in {self.folder}/ at HEAD",
                hint=f"opsloop deploy promote MODEL --to {deployment}",
            )
        spec = loaded.document.spec
        if spec.version is None:
            raise AIOpsError(
                f"deployment '{deployment}' names alias '{spec.alias}', not a version "
                f"({loaded.file}): promote a version first"
            )
        traffic = {int(t.version): float(t.weight) for t in spec.traffic or []}
        return spec.model, int(spec.version), traffic

    def _labels(self, deployment: str) -> dict[str, str]:
        """The labels of the deployment's document at HEAD (none when it has none yet)."""
        loaded = self._loaded(deployment)
        return dict(loaded.document.metadata.labels) if loaded is not None else {}

    def _sync(self, deployment: str) -> dict[str, Any]:
        if self._reconciler is None:
            self._reconciler = Reconciler(self.project, runtime=self.runtime, folder=self.folder)
        outcome = self._reconciler.sync([deployment]).outcome(deployment)
        if outcome.action in ("failed", "invalid") or outcome.health != HealthStatus.HEALTHY:
            raise AIOpsError(
                f"sync of deployment '{deployment}' left it {outcome.health} "
                f"({outcome.action}): {outcome.reason}"
            )
        return {"action": outcome.action, "health": str(outcome.health)}

    # -- actions ---------------------------------------------------------------------------

    @_as_remediation("register")
    def retrain(self, context: ActionContext) -> ActionResult:
        """Retrain on the deployment's recent labelled predictions through the lifecycle.

        Its :class:`~opsloop.spec.remediation.RetrainSettings` say how far back the labelled
        predictions go (``window_s``, and no further than the incident's first alert with
        ``since_incident``), whether the original training data comes first
        (``include_original``) and the lifecycle parameters to override (``overrides``).

        Raises:
            DataError: Nothing labelled to train on.
            AIOpsError: The lifecycle failed, or its gates refused the new version (no alias
                moved then).
        """
        deployment = self._deployment(context)
        settings = context.settings_as(RetrainSettings)
        until = self.clock()
        # The window counts back from the incident's newest evidence (the data time of its
        # latest alert), not from now: an action that runs late (a slow pass, an approval
        # that took an hour) still reads the traffic that showed the problem, and what came
        # after it.
        alerts = incident_alerts(self.project.store, context.incident.id)
        anchor = min(until, max(utc(a.last_seen_at) for a in alerts)) if alerts else until
        since = anchor - timedelta(seconds=settings.window_s)
        if settings.since_incident and alerts:
            since = max(since, min(utc(a.starts_at) for a in alerts))
        table = build_retrain_table(
            self.project,
            deployment,
            since,
            until + timedelta(seconds=1),
            include_original=settings.include_original,
        )
        relative = f"{RETRAIN_FOLDER}/incident-{context.incident.id}.parquet"
        path = self.project.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path, index=False)
        overrides = dict(settings.overrides)
        overrides["source"] = relative
        outcome = run_lifecycle(self.project, overrides=overrides, progress=self.progress)
        reg = outcome.registration
        if not outcome.succeeded or reg is None:
            raise AIOpsError(
                f"retraining on {relative} failed at '{outcome.failed_step}': {outcome.error}",
                hint=f"see 'opsloop runs show {outcome.run_id}'",
            )
        if not reg.get("gates_passed"):
            refused = [
                str(g.get("message") or g.get("name"))
                for g in outcome.outputs.get("gate") or []
                if isinstance(g, dict) and not g.get("passed")
            ]
            raise AIOpsError(
                f"the gates refused {reg['model']} v{reg['version']} (registered as "
                f"{reg.get('alias')}): {'; '.join(refused) or 'see the run'}",
                hint=f"see 'opsloop runs show {outcome.run_id}'",
            )
        return ActionResult(
            did=f"trained on {len(table)} rows of {relative}; registered "
            f"{reg['model']} v{reg['version']} as {reg.get('alias')}",
            model=reg["model"],
            version=int(reg["version"]),
            details={
                "alias": reg.get("alias"),
                "gates_passed": True,
                "run_id": outcome.run_id,
                "rows": len(table),
                "source": relative,
                "metrics": (outcome.outputs.get("evaluate") or {}).get("metrics"),
            },
        )

    def _new_version(self, model: str, context: ActionContext) -> int:
        retrained = context.previous.get("retrain")
        if retrained is not None and retrained.version is not None:
            return retrained.version
        try:
            return self.project.store.models.get_version_by_alias(model, "challenger").version
        except NotFoundError:
            raise AIOpsError(
                f"no new version of '{model}' to try: no retrain ran before and no "
                "'challenger' alias is set"
            ) from None

    @_as_remediation("deploy")
    def canary(self, context: ActionContext) -> ActionResult:
        """Commit a canary split, hold it and judge the new version; withdraw it if it fails.

        The verdict is in the details: ``held``, ``reason``, the requests and the scores.
        """
        deployment = self._deployment(context)
        settings = context.settings_as(CanarySettings)
        weight = settings.weight
        model, old, _ = self._document(deployment)
        new = self._new_version(model, context)
        if new == old:
            raise AIOpsError(f"deployment '{deployment}' already serves {model} v{new}")
        change = set_traffic(deployment, {old: 100 - weight, new: weight}, project=self.project)
        started = self.clock()
        sync = self._sync(deployment)
        verdict = self._watch(
            deployment,
            model,
            old,
            new,
            started,
            settings.hold_s,
            settings.min_requests,
            settings.max_metric_drop,
        )
        did = (
            f"sent {weight:g}% of '{deployment}' to v{new} (v{old} kept {100 - weight:g}%) "
            f"for {verdict['held_s']:.0f}s: {verdict['reason']}"
        )
        details: dict[str, Any] = {"old_version": old, "weight": weight, "sync": sync, **verdict}
        commits = [change.commit]
        if not verdict["held"]:
            withdrawn = self._revert(deployment)
            details["withdrawn"] = withdrawn
            commits.append(withdrawn["commit"])
            did += f"; did not hold, withdrawn by {withdrawn['commit']}"
        return ActionResult(
            did=did, model=model, version=new, commits=tuple(commits), details=details
        )

    def _watch(
        self,
        deployment: str,
        model: str,
        old: int,
        new: int,
        started: datetime,
        hold_s: float,
        min_requests: int,
        max_drop: float,
    ) -> dict[str, Any]:
        spec = self.project.spec
        problem = spec.problem if spec is not None else None
        metric = problem.primary_metric if problem is not None else None
        problem_type = problem.type if problem is not None else "classification"
        deadline = hold_s + self.canary_timeout_s
        counts: dict[str, int] = {}
        while True:
            self.sleep(self.poll_s)
            now = self.clock()
            held_s = (now - started).total_seconds()
            win = load_window(
                self.project.store,
                deployment,
                started,
                now + timedelta(seconds=1),
                artifacts=self.project.artifacts,
            )
            counts = (
                {str(k): int(v) for k, v in win.requests.groupby(VERSION).size().items()}
                if not win.requests.empty
                else {}
            )
            if held_s >= hold_s and counts.get(str(new), 0) >= min_requests:
                break
            if held_s >= deadline:
                return {
                    "held": False,
                    "held_s": held_s,
                    "requests": counts,
                    "reason": f"v{new} served {counts.get(str(new), 0)} request(s) in "
                    f"{held_s:.0f}s, fewer than min_requests={min_requests}",
                }
        verdict: dict[str, Any] = {"held": True, "held_s": held_s, "requests": counts}
        if metric is None:
            verdict["reason"] = "no primary metric declared: judged on requests served"
            return verdict
        scores: dict[str, float | None] = {}
        labelled: dict[str, int] = {}
        for version in (old, new):
            rows = win.rows[win.rows[VERSION] == str(version)] if not win.rows.empty else win.rows
            rows = rows[rows[LABEL].notna()] if not rows.empty else rows
            labelled[str(version)] = len(rows)
            scores[str(version)] = None
            if len(rows) >= _MIN_LABELLED:
                got = quality_metrics(rows, problem_type=problem_type, only=[metric])
                scores[str(version)] = got.get(metric)
        verdict.update({"metric": metric, "scores": scores, "labelled": labelled})
        before, after = scores[str(old)], scores[str(new)]
        if before is None or after is None:
            verdict["reason"] = (
                f"too few labels to compare {metric} (need {_MIN_LABELLED} per version): "
                "judged on requests served"
            )
            return verdict
        drop = before - after if metric_direction(metric) else after - before
        verdict["drop"] = drop
        if drop > max_drop:
            verdict["held"] = False
            verdict["reason"] = (
                f"{metric} of v{new} is {after:.4f} against {before:.4f} for v{old}: worse by "
                f"{drop:.4f} > max_metric_drop {max_drop:g}"
            )
        else:
            verdict["reason"] = f"{metric} v{new} {after:.4f} vs v{old} {before:.4f}"
        return verdict

    def _revert(self, deployment: str) -> dict[str, Any]:
        change = rollback(deployment, project=self.project)
        return {"commit": change.commit, "message": change.message, "sync": self._sync(deployment)}

    @_as_remediation("deploy")
    def promote(self, context: ActionContext) -> ActionResult:
        """Commit the canary's version as the deployment's whole traffic, then sync."""
        deployment = self._deployment(context)
        model, old, _ = self._document(deployment)
        canary = context.previous.get("canary")
        new = (
            canary.version
            if canary is not None and canary.version is not None
            else self._new_version(model, context)
        )
        change = promote(model, to=deployment, version=new, alias=None, project=self.project)
        sync = self._sync(deployment)
        return ActionResult(
            did=f"'{deployment}' serves {model} v{new} at 100% (was v{old})",
            model=model,
            version=new,
            commits=(change.commit,),
            details={"previous_version": old, "sync": sync},
        )

    @_as_remediation("deploy")
    def rollback(self, context: ActionContext) -> ActionResult:
        """Revert the deployment's last change in Git, then sync."""
        deployment = self._deployment(context)
        model, before, _ = self._document(deployment)
        reverted = self._revert(deployment)
        _, after, traffic = self._document(deployment)
        why = " (withdrawing a canary)" if context.compensates is not None else ""
        return ActionResult(
            did=f"reverted '{deployment}''s last change{why}: v{before} -> v{after}",
            model=model,
            version=after,
            commits=(reverted["commit"],),
            details={
                "previous_version": before,
                "traffic": {str(k): v for k, v in traffic.items()},
                "message": reverted["message"],
                "sync": reverted["sync"],
            },
        )

    def notify(self, context: ActionContext) -> ActionResult:
        """Send the notification webhook."""
        return WebhookExecutor().notify(context)


def default_executor(project: Project | None = None) -> ActionExecutor:
    """The executor the CLI approves actions with: notifications over HTTP, and the lifecycle
    (retrain) and GitOps (canary, promote, rollback) actions on ``project`` (default: the
    current one) through :class:`LoopExecutor`.

    Outside a project only ``notify`` can run.
    """
    if project is None:
        try:
            project = current_project()
        except OpsloopError:
            return WebhookExecutor()
    return WebhookExecutor(delegate=LoopExecutor(project))
