"""The reconciler: compare the desired state in Git with what a runtime runs, and make them
match.

One pass reads every document at a revision, resolves aliases and checks versions in the
registry, asks the runtime for live state, computes each deployment's diff and, where it
may, applies it. Statuses use Argo CD's words: sync ``Synced | OutOfSync | Unknown`` and
health ``Healthy | Progressing | Degraded | Suspended | Missing | Unknown``, always with a
reason.

A pass is one of three modes:

* ``manual`` (``opsloop sync``): apply every difference of the deployments asked for.
* ``auto`` (the loop of ``opsloop up``): apply a new revision where ``syncPolicy.automated``
  is on, bring back drift (a dead or hand-changed server) where ``selfHeal`` is on, stop
  deployments removed from Git where ``prune`` is on. A failed sync is retried after a
  back-off, not on every pass.
* ``refresh`` (``opsloop status``): compute and record statuses, change nothing.

Bad input stays contained: an invalid document, an unknown model version or a port in use
marks that one deployment ``Degraded`` with the reason, and leaves every other deployment
and the live state untouched. A deployment whose document cannot be read is never pruned.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock

from opsloop.errors import GitOpsError, OpsloopError
from opsloop.gitops.loader import (
    DesiredState,
    DocumentProblem,
    LoadedDocument,
    load_desired_state,
    resolve_spec,
)
from opsloop.gitops.repo import GitRepo
from opsloop.gitops.runtime import Runtime, open_runtime
from opsloop.gitops.types import Health, HealthStatus, LiveDeployment, RuntimeSpec, SyncStatus
from opsloop.gitops.wording import describe_diff, split_text, versions_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from opsloop.context import Project
    from opsloop.store.types import DeploymentRecord

__all__ = [
    "DEFAULT_FOLDER",
    "DeploymentOutcome",
    "Reconciler",
    "SyncResult",
    "compute_diff",
    "run_forever",
    "status",
    "sync",
]

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "deploy"
Mode = Literal["manual", "auto", "refresh"]

#: Sync results recorded in ``sync_history``.
SUCCEEDED, FAILED, PRUNED = "Succeeded", "Failed", "Pruned"

_SPEC_FIELDS = (
    "model",
    "version",
    "alias",
    "traffic",
    "shadow",
    "replicas",
    "port",
    "resources",
    "labels",
)


@dataclass
class DeploymentOutcome:
    """What one pass found and did for one deployment.

    Attributes:
        name: Deployment name (for a document whose name cannot be read, its file).
        sync: Sync status.
        health: Health status.
        reason: Why, in one line.
        action: ``none``, ``synced``, ``healed``, ``failed``, ``pruned``, ``skipped``,
            ``invalid``, ``would-sync`` or ``would-prune`` (dry run).
        diff: Field by field, ``{"live": …, "desired": …}``.
        file: The document's path in the repository.
        version: The main model version desired.
        endpoints: URLs of the running replicas.
        traffic: The traffic split desired (percent per version), else the live one.
        shadow: The shadow versions, likewise.
    """

    name: str
    sync: SyncStatus
    health: HealthStatus
    reason: str
    action: str = "none"
    diff: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    version: int | None = None
    endpoints: list[str] = field(default_factory=list)
    traffic: dict[int, float] = field(default_factory=dict)
    shadow: list[int] = field(default_factory=list)

    @property
    def serving(self) -> str:
        """What the deployment serves, in words: ``v1``, or ``v1 90%, v2 10%``, with its
        shadows; ``-`` when nothing is known."""
        if self.traffic and (len(self.traffic) > 1 or self.shadow):
            return split_text(self.traffic, self.shadow)
        if self.traffic:
            return versions_text(self.traffic)
        return f"v{self.version}" if self.version is not None else "-"


@dataclass
class SyncResult:
    """The outcome of one pass.

    Attributes:
        revision: The commit read (or ``working-tree``).
        mode: ``manual``, ``auto`` or ``refresh``.
        dry_run: Whether changes were only shown.
        outcomes: One per deployment, by name.
        problems: Documents that could not be used (also those without a readable name).
    """

    revision: str
    mode: str
    dry_run: bool
    outcomes: list[DeploymentOutcome] = field(default_factory=list)
    problems: list[DocumentProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem, no failed sync and no degraded deployment."""
        return not self.problems and all(
            o.action != "failed" and o.health != HealthStatus.DEGRADED for o in self.outcomes
        )

    def outcome(self, name: str) -> DeploymentOutcome:
        """The outcome of one deployment.

        Raises:
            GitOpsError: The pass did not cover ``name``.
        """
        for o in self.outcomes:
            if o.name == name:
                return o
        raise GitOpsError(f"deployment '{name}' was not part of this pass")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def compute_diff(desired: RuntimeSpec, live: LiveDeployment | None) -> dict[str, Any]:
    """How the live deployment differs from the desired one, field by field.

    Beside the spec's fields, a replica that is not running and a server whose routing
    table was changed by hand count as differences.
    """
    if live is None:
        return {"deployment": {"live": None, "desired": "running"}}
    diff: dict[str, Any] = {}
    for name in _SPEC_FIELDS:
        want, have = getattr(desired, name), getattr(live.spec, name)
        if want != have:
            diff[name] = _jsonable({"live": have, "desired": want})
    if diff:
        return diff
    if live.running != desired.replicas:
        diff["running"] = {"live": live.running, "desired": desired.replicas}
    want_routing = desired.routing.normalized()
    for i, observed in enumerate(live.routing):
        if observed is not None and observed.normalized() != want_routing:
            diff[f"routing[{i}]"] = _jsonable(
                {
                    "live": observed.normalized().model_dump(),
                    "desired": want_routing.model_dump(),
                }
            )
    return diff


def _refused(
    name: str,
    reason: str,
    file: str | None,
    live: LiveDeployment | None,
    *,
    version: int | None = None,
) -> DeploymentOutcome:
    """A deployment whose desired state cannot be applied: Degraded, live state untouched."""
    note = "" if live is None else "; the live deployment is left as it is"
    return DeploymentOutcome(
        name=name,
        sync=SyncStatus.UNKNOWN,
        health=HealthStatus.DEGRADED,
        reason=f"{reason}{note}",
        action="invalid",
        file=file,
        version=version,
        endpoints=live.endpoints if live else [],
        traffic=dict(live.spec.traffic) if live else {},
        shadow=list(live.spec.shadow) if live else [],
    )


class Reconciler:
    """Syncs one project's deployments from its Git repository to a runtime.

    Args:
        project: The project (default: the current one).
        runtime: A runtime, or the name of one (``local``, ``kubernetes``).
        folder: The folder of deployment documents, relative to the project.
        runtime_options: Options of a runtime given by name.
        retry_backoff_s: In ``auto`` mode, how long a failed sync of an unchanged spec waits
            before it is tried again.
    """

    def __init__(
        self,
        project: Project | None = None,
        *,
        runtime: Runtime | str = "local",
        folder: str = DEFAULT_FOLDER,
        runtime_options: dict[str, Any] | None = None,
        retry_backoff_s: float = 30.0,
    ) -> None:
        if project is None:
            # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where
            # it is used, so importing this module stays light.
            from opsloop.context import current_project  # noqa: PLC0415

            project = current_project()
        self.project = project
        self.store = project.store
        self.repo = GitRepo(project.dir)
        self.folder = self.repo.relpath(project.dir / folder)
        self.runtime = (
            runtime
            if isinstance(runtime, Runtime)
            else open_runtime(runtime, project, **(runtime_options or {}))
        )
        self.retry_backoff_s = retry_backoff_s
        lock_dir = project.state_dir / "runtime"
        lock_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(lock_dir / "reconcile.lock"), timeout=900)

    # -- reading ------------------------------------------------------------------------------

    def desired(self, revision: str | None = "HEAD") -> DesiredState:
        """The desired state at ``revision`` (None: the working tree)."""
        return load_desired_state(self.repo, self.folder, revision=revision)

    # -- passes -------------------------------------------------------------------------------

    def sync(
        self,
        names: Sequence[str] | None = None,
        *,
        revision: str | None = "HEAD",
        dry_run: bool = False,
        prune: bool | None = None,
        mode: Mode = "manual",
    ) -> SyncResult:
        """One reconciliation pass.

        Args:
            names: Only these deployments (default: all).
            revision: Git revision to read (None: the working tree).
            dry_run: Compute and show the diff, change nothing (not even the store).
            prune: Stop deployments removed from Git: True, False, or None to follow the
                ``syncPolicy.prune`` each had when it was last seen.
            mode: ``manual``, ``auto`` or ``refresh`` (see the module docstring).

        Raises:
            GitOpsError: The repository or revision cannot be read, or a name is unknown.
        """
        if mode == "refresh" or dry_run:
            return self._pass(names, revision, dry_run, prune, mode)
        with self._lock:
            return self._pass(names, revision, dry_run, prune, mode)

    def status(self, names: Sequence[str] | None = None, *, revision: str = "HEAD") -> SyncResult:
        """Fresh statuses of every deployment, recorded in the store; nothing is applied."""
        return self.sync(names, revision=revision, mode="refresh")

    def run_forever(
        self,
        interval_s: float = 5.0,
        *,
        stop: threading.Event | None = None,
        on_pass: Callable[[SyncResult], None] | None = None,
        on_error: Callable[[OpsloopError], None] | None = None,
        max_passes: int | None = None,
    ) -> None:
        """Reconcile in ``auto`` mode every ``interval_s`` seconds until ``stop`` is set.

        An error of one pass (an unreadable repository …) is reported to ``on_error`` (or
        logged) and the loop goes on.
        """
        stop = stop or threading.Event()
        passes = 0
        while not stop.is_set():
            try:
                result = self.sync(mode="auto")
            except OpsloopError as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    log.error("reconcile pass failed: %s", exc)
            else:
                if on_pass is not None:
                    on_pass(result)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                return
            stop.wait(interval_s)

    # -- one pass -----------------------------------------------------------------------------

    def _pass(
        self,
        names: Sequence[str] | None,
        revision: str | None,
        dry_run: bool,
        prune: bool | None,
        mode: Mode,
    ) -> SyncResult:
        desired = self.desired(revision)
        live = self.runtime.live_state()
        records = {r.name: r for r in self.store.deployments.list()}
        problems = desired.problems_by_name()
        problem_files = {p.file: p for p in desired.problems}
        for record in records.values():
            # A document that can no longer be read keeps its deployment: never prune it.
            src = record.desired.get("file")
            if (
                record.name not in desired.documents
                and record.name not in problems
                and src in problem_files
            ):
                problems[record.name] = problem_files[src]
        known = set(desired.documents) | set(problems) | set(live) | set(records)
        if names:
            unknown = sorted(set(names) - known)
            if unknown:
                raise GitOpsError(
                    f"no deployment named {', '.join(repr(n) for n in unknown)} in "
                    f"{self.folder}/ at {desired.revision[:10]} nor running",
                    hint="see 'opsloop status'",
                )
            selected = sorted(set(names))
        else:
            selected = sorted(known)
        result = SyncResult(revision=desired.revision, mode=mode, dry_run=dry_run)
        named_files = {p.file for n, p in problems.items() if n in selected}
        result.problems = [
            p for p in desired.problems if not names or p.name in selected or p.file in named_files
        ]
        for name in selected:
            rec = records.get(name)
            try:
                if name in problems:
                    outcome = self._invalid(name, problems[name], live.get(name), desired, dry_run)
                elif name in desired.documents:
                    outcome = self._desired(
                        desired.documents[name], live.get(name), desired, dry_run, mode
                    )
                else:
                    outcome = self._orphan(name, live.get(name), rec, desired, dry_run, prune, mode)
            except Exception as exc:
                # One deployment's unexpected failure must not stop the others' sync.
                log.exception("reconciling deployment %s failed", name)
                outcome = DeploymentOutcome(
                    name=name,
                    sync=SyncStatus.UNKNOWN,
                    health=HealthStatus.UNKNOWN,
                    reason=f"reconcile error: {type(exc).__name__}: {exc}",
                    action="failed",
                )
            result.outcomes.append(outcome)
        if not names:
            for p in desired.problems:
                if p.name is None and p.file not in named_files:
                    result.outcomes.append(
                        DeploymentOutcome(
                            name=p.file,
                            sync=SyncStatus.UNKNOWN,
                            health=HealthStatus.DEGRADED,
                            reason=f"invalid document: {p.message}",
                            action="invalid",
                            file=p.file,
                        )
                    )
        return result

    def _health(self, name: str) -> Health:
        try:
            return self.runtime.health(name)
        except OpsloopError as exc:
            return Health(status=HealthStatus.UNKNOWN, reason=f"health check failed: {exc}")

    def _save(
        self,
        dry_run: bool,
        outcome: DeploymentOutcome,
        revision: str,
        desired: dict[str, Any] | None,
        live: LiveDeployment | None,
    ) -> DeploymentOutcome:
        if not dry_run:
            self.store.deployments.save_status(
                outcome.name,
                revision=revision,
                desired=desired,
                live=live.model_dump(mode="json") if live is not None else {},
                sync_status=str(outcome.sync),
                health_status=str(outcome.health),
                reason=outcome.reason,
            )
        return outcome

    def _invalid(
        self,
        name: str,
        problem: DocumentProblem,
        live: LiveDeployment | None,
        desired: DesiredState,
        dry_run: bool,
    ) -> DeploymentOutcome:
        outcome = _refused(name, f"invalid document: {problem.message}", problem.file, live)
        return self._save(dry_run, outcome, desired.revision, None, live)

    def _desired(
        self,
        loaded: LoadedDocument,
        live: LiveDeployment | None,
        desired: DesiredState,
        dry_run: bool,
        mode: Mode,
    ) -> DeploymentOutcome:
        name, doc = loaded.name, loaded.document
        policy = doc.spec.sync_policy
        stored: dict[str, Any] = {
            "file": loaded.file,
            "document": doc.to_data(),
            "syncPolicy": policy.model_dump(by_alias=True),
        }
        try:
            spec = resolve_spec(doc, self.store)
        except OpsloopError as exc:
            outcome = _refused(
                name, f"{loaded.file}: {exc}", loaded.file, live, version=doc.spec.version
            )
            return self._save(dry_run, outcome, desired.revision, stored, live)
        spec_hash = spec.spec_hash()
        stored |= {"spec": spec.model_dump(mode="json"), "spec_hash": spec_hash}
        diff = compute_diff(spec, live)
        base = DeploymentOutcome(
            name=name,
            sync=SyncStatus.SYNCED,
            health=HealthStatus.UNKNOWN,
            reason="",
            diff=diff,
            file=loaded.file,
            version=spec.version,
            endpoints=live.endpoints if live else [],
            traffic=dict(spec.traffic),
            shadow=list(spec.shadow),
        )
        if not diff:
            health = self._health(name)
            base.health, base.reason = health.status, health.reason
            return self._save(dry_run, base, desired.revision, stored, live)

        applied_hash = self._applied_hash(name)
        trigger = "manual" if mode == "manual" else "automated"
        why_not = ""
        if mode == "refresh":
            why_not = "run 'opsloop sync' to apply"
        elif mode == "auto":
            if not policy.automated:
                why_not = f"automated sync is off; run 'opsloop sync {name}'"
            elif applied_hash == spec_hash:
                trigger = "self-heal"
                if not policy.self_heal:
                    why_not = f"live state drifted and self-heal is off; run 'opsloop sync {name}'"
            if not why_not:
                why_not = self._backoff(name, spec_hash)
        if dry_run and not why_not:
            why_not = "dry run"
        if why_not:
            base.sync = SyncStatus.OUT_OF_SYNC
            base.reason = f"{describe_diff(diff)} ({why_not})"
            if live is None:
                base.health = HealthStatus.MISSING
            else:
                health = self._health(name)
                base.health = health.status
                base.reason += f"; health: {health.reason}"
            base.action = "would-sync" if dry_run else "skipped"
            return self._save(dry_run, base, desired.revision, stored, live)

        started = datetime.now(UTC)
        details: dict[str, Any] = {
            "spec_hash": spec_hash,
            "file": loaded.file,
            "trigger": trigger,
            "runtime": self.runtime.name,
            "model": spec.model,
            "version": spec.version,
        }
        try:
            self._verify(spec)
            live_after = self.runtime.apply(name, spec)
        except OpsloopError as exc:
            details["error"] = str(exc)
            self.store.deployments.record_sync(
                name,
                revision=desired.revision,
                started_at=started,
                result=FAILED,
                diff=diff,
                details=details,
                kind="deployment.sync_failed",
            )
            base.sync = SyncStatus.OUT_OF_SYNC
            base.health = HealthStatus.DEGRADED
            base.reason = f"sync failed: {exc}"
            base.action = "failed"
            after = self.runtime.live_state().get(name)
            base.endpoints = after.endpoints if after else []
            return self._save(False, base, desired.revision, stored, after)
        self.store.deployments.record_sync(
            name,
            revision=desired.revision,
            started_at=started,
            result=SUCCEEDED,
            diff=diff,
            details=details,
            kind="deployment.healed" if trigger == "self-heal" else "deployment.synced",
        )
        health = self._health(name)
        base.health = health.status
        base.action = "healed" if trigger == "self-heal" else "synced"
        base.reason = f"{base.action}: {describe_diff(diff)}; {health.reason}"
        base.endpoints = live_after.endpoints
        return self._save(False, base, desired.revision, stored, live_after)

    def _verify(self, spec: RuntimeSpec) -> None:
        """Check every version the spec would serve against the admission policy and verify
        its signature before it starts: a version that fails is refused (a refusal by the
        policy is recorded as a ``security.refused`` event) and what runs now keeps running."""
        from opsloop.registry import verify_model  # noqa: PLC0415
        from opsloop.registry.admission import admission_policy, require_admitted  # noqa: PLC0415
        from opsloop.registry.signing import project_trusted_keys  # noqa: PLC0415

        trusted = project_trusted_keys(self.project)
        policy = admission_policy(self.project)
        for version in sorted({spec.version, *spec.traffic, *spec.shadow}):
            info = self.store.models.get_version(spec.model, version)
            require_admitted(
                self.store, spec.model, version, info.details, where="deploy", policy=policy
            )
            verify_model(
                f"models:/{spec.model}/{version}",
                store=self.store,
                artifacts=self.project.artifacts,
                cache_dir=self.project.state_dir / "cache" / "models",
                trusted=trusted,
            )

    def _applied_hash(self, name: str) -> str | None:
        last = self.store.deployments.last_sync(name, result=SUCCEEDED)
        return None if last is None else last.details.get("spec_hash")

    def _backoff(self, name: str, spec_hash: str) -> str:
        last = self.store.deployments.last_sync(name)
        if last is None or last.result != FAILED or last.details.get("spec_hash") != spec_hash:
            return ""
        finished = last.finished_at or last.started_at
        wait = self.retry_backoff_s - (datetime.now(UTC) - finished).total_seconds()
        if wait <= 0:
            return ""
        return f"last sync failed: {last.details.get('error', '?')}; retrying in {wait:.0f} s"

    def _orphan(
        self,
        name: str,
        live: LiveDeployment | None,
        rec: DeploymentRecord | None,
        desired: DesiredState,
        dry_run: bool,
        prune: bool | None,
        mode: Mode,
    ) -> DeploymentOutcome:
        policy = (rec.desired.get("syncPolicy") if rec else None) or {}
        if prune is None:
            prune = bool(policy.get("prune")) and (
                mode == "manual" or bool(policy.get("automated"))
            )
        where = f"{self.folder}/ at {desired.revision[:10]}"
        file = rec.desired.get("file") if rec else None
        if live is None:
            outcome = DeploymentOutcome(
                name=name,
                sync=SyncStatus.SYNCED,
                health=HealthStatus.MISSING,
                reason=f"not in {where} and not running",
                file=file,
            )
            if not dry_run and mode != "refresh":
                self.store.deployments.delete(
                    name, {"revision": desired.revision, "reason": outcome.reason}
                )
            return outcome
        if mode == "refresh" or dry_run or not prune:
            health = self._health(name)
            hint = "dry run" if dry_run else f"prune is off; run 'opsloop sync --prune {name}'"
            outcome = DeploymentOutcome(
                name=name,
                sync=SyncStatus.OUT_OF_SYNC,
                health=health.status,
                reason=f"not in {where} but running ({hint})",
                action="would-prune" if dry_run and prune else "skipped",
                diff={"deployment": {"live": "running", "desired": None}},
                file=file,
                endpoints=live.endpoints,
                traffic=dict(live.spec.traffic),
                shadow=list(live.spec.shadow),
            )
            return self._save(dry_run, outcome, desired.revision, None, live)
        started = datetime.now(UTC)
        diff = {"deployment": {"live": "running", "desired": None}}
        try:
            self.runtime.stop(name)
        except OpsloopError as exc:
            self.store.deployments.record_sync(
                name,
                revision=desired.revision,
                started_at=started,
                result=FAILED,
                diff=diff,
                details={"trigger": "prune", "error": str(exc), "runtime": self.runtime.name},
                kind="deployment.sync_failed",
            )
            outcome = DeploymentOutcome(
                name=name,
                sync=SyncStatus.OUT_OF_SYNC,
                health=HealthStatus.DEGRADED,
                reason=f"prune failed: {exc}",
                action="failed",
                file=file,
                endpoints=live.endpoints,
                traffic=dict(live.spec.traffic),
                shadow=list(live.spec.shadow),
            )
            return self._save(False, outcome, desired.revision, None, live)
        self.store.deployments.record_sync(
            name,
            revision=desired.revision,
            started_at=started,
            result=PRUNED,
            diff=diff,
            details={"trigger": "prune", "runtime": self.runtime.name},
            kind="deployment.pruned",
        )
        reason = f"pruned: not in {where}"
        self.store.deployments.delete(name, {"revision": desired.revision, "reason": reason})
        return DeploymentOutcome(
            name=name,
            sync=SyncStatus.SYNCED,
            health=HealthStatus.MISSING,
            reason=reason,
            action="pruned",
            diff=diff,
            file=file,
        )


def sync(
    names: Sequence[str] | None = None,
    *,
    project: Project | None = None,
    runtime: Runtime | str = "local",
    revision: str | None = "HEAD",
    dry_run: bool = False,
    prune: bool | None = None,
    folder: str = DEFAULT_FOLDER,
) -> SyncResult:
    """One manual sync pass of the project's deployments (see :meth:`Reconciler.sync`)."""
    rec = Reconciler(project, runtime=runtime, folder=folder)
    return rec.sync(names, revision=revision, dry_run=dry_run, prune=prune)


def status(
    names: Sequence[str] | None = None,
    *,
    project: Project | None = None,
    runtime: Runtime | str = "local",
    folder: str = DEFAULT_FOLDER,
) -> SyncResult:
    """Fresh sync and health status of every deployment (see :meth:`Reconciler.status`)."""
    return Reconciler(project, runtime=runtime, folder=folder).status(names)


def run_forever(
    interval_s: float = 5.0,
    *,
    project: Project | None = None,
    runtime: Runtime | str = "local",
    folder: str = DEFAULT_FOLDER,
    stop: threading.Event | None = None,
    on_pass: Callable[[SyncResult], None] | None = None,
    on_error: Callable[[OpsloopError], None] | None = None,
    max_passes: int | None = None,
) -> None:
    """Reconcile continuously (see :meth:`Reconciler.run_forever`)."""
    Reconciler(project, runtime=runtime, folder=folder).run_forever(
        interval_s, stop=stop, on_pass=on_pass, on_error=on_error, max_passes=max_passes
    )
