"""The loop controller: the one place that composes GitOps, monitoring, AIOps and the lifecycle.

One pass::

    reconcile        make the running servers match Git (automated sync, self-heal, prune)
    monitor          scrape the replicas, run each deployment's monitors (when due)
    alert            rules and detectors over the new points
    correlate        alerts into incidents with a ranked root cause
    data             load the database or HTTP source when due, judge its data SLAs
                     (freshness, volume) and alert on them
    remediate        the policies of opsloop.yaml on open incidents, with their guardrails
                     (cooldown, daily limit, approval, dry run); a deployment's document may
                     pin its policy (spec.remediation)
    schedule         the schedules of opsloop.yaml: cron times, new data, incidents of a kind
    costs            budgets and cost anomalies as alerts and incidents (when due; FinOps)
    record           retention of the prediction log, runs whose process died, the pass
    meter            what the replicas reserved, used and served since the last pass, the
                     stored bytes (now and then), and the pass's own work (FinOps)

``opsloop up`` runs passes on a schedule (:mod:`opsloop.loop.service`); the quickstart's loop
runs the very same passes and only adds the traffic replay. Each step's failure is recorded
on the pass and the next step still runs: a broken alert rule must not stop the reconciler.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.aiops.executors import WebhookExecutor
from opsloop.aiops.remediation import NO_POLICY, RemediationEngine
from opsloop.errors import OpsloopError
from opsloop.finops import LoopMeter, charge_of
from opsloop.gitops import DEFAULT_FOLDER, DeploymentDocument, Reconciler, SyncResult
from opsloop.lifecycle.schedules import Scheduler, TickResult
from opsloop.loop import cost_actions
from opsloop.loop.actions import LoopExecutor
from opsloop.loop.costs import CostStepResult, cost_step
from opsloop.loop.datasla import DataStepResult, data_step
from opsloop.loop.monitoring import MonitorStepResult, monitor_step
from opsloop.monitor.retention import PruneResult, prune_pass

if TYPE_CHECKING:
    from collections.abc import Callable

    from opsloop.aiops.executors import ActionExecutor
    from opsloop.context import Project
    from opsloop.gitops import Runtime
    from opsloop.store import ActionInfo, RunInfo

__all__ = ["Controller", "PassReport"]

# The cost incidents' actions (scale_to_minimum) join the remediation actions with the loop.
assert cost_actions.COST_ACTIONS


@dataclass
class PassReport:
    """What one pass of the loop saw and did.

    Attributes:
        number: The pass's number since the controller started, from 1.
        started_at: When it started (UTC).
        finished_at: When it ended.
        sync: The reconciliation, None if it failed.
        monitored: The monitoring step, None when it was not due or failed.
        costs: The cost step (budgets, cost anomalies), None when it was not due or failed.
        remediated: Remediation actions by incident, for the incidents acted on.
        interrupted: Actions found running under a process that is gone, now interrupted.
        pruned: The prediction log's retention, run after monitoring.
        reaped: Runs whose process died, now marked killed.
        data: The data step: sources loaded, data SLAs judged and alerted on.
        scheduled: The schedules' tick: runs started, skipped, finished, replaced.
        errors: Each step that failed, with why.
    """

    number: int
    started_at: datetime
    finished_at: datetime | None = None
    sync: SyncResult | None = None
    monitored: MonitorStepResult | None = None
    costs: CostStepResult | None = None
    remediated: dict[int, list[ActionInfo]] = field(default_factory=dict)
    interrupted: list[ActionInfo] = field(default_factory=list)
    pruned: PruneResult | None = None
    reaped: list[RunInfo] = field(default_factory=list)
    data: DataStepResult | None = None
    scheduled: TickResult | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def actions(self) -> list[ActionInfo]:
        """Every remediation action the pass ran or planned."""
        return [a for actions in self.remediated.values() for a in actions]

    def summary(self) -> dict[str, Any]:
        """The pass as one JSON-ready record (a log line of ``opsloop up``)."""
        out: dict[str, Any] = {
            "pass": self.number,
            "started_at": self.started_at.isoformat(),
            "seconds": round(
                ((self.finished_at or self.started_at) - self.started_at).total_seconds(), 3
            ),
        }
        if self.sync is not None:
            out["deployments"] = {
                o.name: {
                    "sync": str(o.sync),
                    "health": str(o.health),
                    "action": o.action,
                    "reason": o.reason,
                }
                for o in self.sync.outcomes
            }
        if self.monitored is not None:
            out["monitor"] = {
                "windows": self.monitored.windows,
                "points": self.monitored.points,
                "alerts": len(self.monitored.alerts),
                "opened": self.monitored.opened,
                "updated": self.monitored.ingest.updated,
                "resolved": self.monitored.ingest.resolved,
            }
        if self.costs is not None:
            out["costs"] = self.costs.summary()
        if self.remediated:
            out["remediated"] = {
                str(incident): [f"{a.action}: {a.status}" for a in actions]
                for incident, actions in self.remediated.items()
            }
        if self.interrupted:
            out["interrupted"] = [a.id for a in self.interrupted]
        if self.pruned is not None and (self.pruned.predictions or self.pruned.feedback):
            out["pruned"] = {
                "predictions": self.pruned.predictions,
                "feedback": self.pruned.feedback,
            }
        if self.reaped:
            out["reaped_runs"] = [r.id for r in self.reaped]
        if self.data is not None and (self.data.loaded or self.data.ingest.alerts):
            out["data"] = {
                "loaded": dict(self.data.loaded),
                "sla": {f"{r.source}/{r.sla}": r.ok for r in self.data.results},
                "opened": self.data.ingest.opened,
            }
        if self.scheduled is not None and self.scheduled.summary():
            out["schedules"] = self.scheduled.summary()
        if self.errors:
            out["errors"] = list(self.errors)
        return out


class Controller:
    """Runs the closed loop over one project.

    Args:
        project: The project.
        runtime: Where deployments run: a runtime, or the name of one (``local``,
            ``kubernetes``).
        folder: The folder of deployment documents, relative to the project.
        executor: Does the remediation actions' work (default: the lifecycle for retrain,
            Git commits and a sync through this controller's reconciler for canary, promote
            and rollback, a webhook for notify).
        monitor_every_s: Seconds between monitoring steps (0: never monitor).
        remediate: Run the remediation policies (False: incidents are only opened).
        scheduler: Runs the schedules of ``opsloop.yaml`` (default: one that starts
            ``opsloop run`` processes).
        clock: The current time (UTC), for tests.

    Raises:
        AIOpsError: A remediation policy names an action no installed package provides.
        PluginError: The package of an action a policy names cannot be imported.
    """

    def __init__(
        self,
        project: Project,
        *,
        runtime: Runtime | str = "local",
        folder: str = DEFAULT_FOLDER,
        executor: ActionExecutor | None = None,
        monitor_every_s: float = 60.0,
        remediate: bool = True,
        scheduler: Scheduler | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.project = project
        self.folder = folder
        self.reconciler = Reconciler(project, runtime=runtime, folder=folder)
        self.executor = executor or WebhookExecutor(
            delegate=LoopExecutor(project, reconciler=self.reconciler, folder=folder)
        )
        self.monitor_every_s = monitor_every_s
        self.remediate = remediate
        self.clock = clock or (lambda: datetime.now(UTC))
        self.scheduler = scheduler or Scheduler(project, clock=self.clock)
        self.passes = 0
        self._last_monitor: float | None = None
        self._last_costs: float | None = None
        self._recovered = False
        spec = project.spec
        self.meter = LoopMeter(
            project.store, charge=charge_of(project.name, spec.finops if spec else None)
        )
        # The policies are checked now, so that a policy naming an unknown action stops the
        # loop from starting instead of failing at its first incident.
        self.engine({})

    @property
    def runtime(self) -> Runtime:
        """The runtime the reconciler syncs to."""
        return self.reconciler.runtime

    def engine(self, documents: dict[str, DeploymentDocument]) -> RemediationEngine:
        """The remediation engine with the project's policies and the documents' pins."""
        spec = self.project.spec
        pinned = {
            name: doc.spec.remediation
            for name, doc in documents.items()
            if doc.spec.remediation is not None
        }
        return RemediationEngine(
            self.project.store,
            self.executor,
            spec.remediation if spec is not None else (),
            clock=self.clock,
            pinned=pinned,
        )

    def run_pass(
        self,
        *,
        until: datetime | None = None,
        monitor: bool | None = None,
        reconcile: bool = True,
    ) -> PassReport:
        """One pass of the loop (see the module docstring).

        Args:
            until: Monitor the windows that ended by this time (default: those complete now).
            monitor: Run the monitoring step now (True), never (False), or when due (None).
            reconcile: Reconcile first.
        """
        self.passes += 1
        report = PassReport(number=self.passes, started_at=self.clock())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        monitor_cpu = monitor_wall = 0.0
        store = self.project.store
        if reconcile:
            try:
                report.sync = self.reconciler.sync(mode="auto")
            except OpsloopError as exc:
                report.errors.append(f"reconcile: {exc}")
        documents = self._documents(report)
        engine: RemediationEngine | None = None
        try:
            engine = self.engine(documents)
        except OpsloopError as exc:
            report.errors.append(f"remediation: {exc}")
        if engine is not None and not self._recovered:
            # Once per controller: what a killed predecessor left running.
            self._recovered = True
            try:
                report.interrupted = engine.recover()
            except OpsloopError as exc:
                report.errors.append(f"recover: {exc}")
        if self._due(monitor):
            mcpu0, mwall0 = time.process_time(), time.perf_counter()
            try:
                report.monitored = monitor_step(self.project, until=until, documents=documents)
            except OpsloopError as exc:
                report.errors.append(f"monitor: {exc}")
            monitor_cpu = time.process_time() - mcpu0
            monitor_wall = time.perf_counter() - mwall0
            try:
                # After the monitors, so that retention may take what they have read.
                report.pruned = prune_pass(self.project)
            except OpsloopError as exc:
                report.errors.append(f"retention: {exc}")
        try:
            report.data = data_step(self.project, self.clock())
        except OpsloopError as exc:
            report.errors.append(f"data: {exc}")
        if self.remediate and engine is not None:
            self._check_pins(engine, report)
            try:
                report.remediated = engine.remediate_open()
            except OpsloopError as exc:
                report.errors.append(f"remediate: {exc}")
        # After remediation: the incidents this opens are remediated from the next pass on,
        # and a pass's remediation is not held up by pricing the month.
        if self._costs_due():
            mcpu0, mwall0 = time.process_time(), time.perf_counter()
            try:
                spec = self.project.spec
                report.costs = cost_step(
                    store, spec.finops if spec is not None else None, now=self.clock()
                )
            except OpsloopError as exc:
                report.errors.append(f"costs: {exc}")
            # Evaluating budgets is monitoring work: a shared cost like the monitors'.
            monitor_cpu += time.process_time() - mcpu0
            monitor_wall += time.perf_counter() - mwall0
        try:
            report.scheduled = self.scheduler.tick(self.clock())
            report.errors.extend(f"schedules: {e}" for e in report.scheduled.errors)
        except OpsloopError as exc:
            report.errors.append(f"schedules: {exc}")
        try:
            report.reaped = store.runs.reap_dead()
        except OpsloopError as exc:
            report.errors.append(f"runs: {exc}")
        self._meter(
            report,
            time.process_time() - cpu0,
            time.perf_counter() - wall0,
            monitor_cpu,
            monitor_wall,
        )
        report.finished_at = self.clock()
        return report

    def run_forever(
        self,
        interval_s: float = 5.0,
        *,
        stop: threading.Event | None = None,
        on_pass: Callable[[PassReport], None] | None = None,
        max_passes: int | None = None,
    ) -> None:
        """Run passes every ``interval_s`` seconds until ``stop`` is set (a pass in progress
        always finishes first)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            report = self.run_pass()
            if on_pass is not None:
                on_pass(report)
            if max_passes is not None and self.passes >= max_passes:
                return
            stop.wait(interval_s)

    # -- helpers ------------------------------------------------------------------------------

    def _due(self, monitor: bool | None) -> bool:
        if monitor is not None:
            if monitor:
                self._last_monitor = time.monotonic()
            return monitor
        if self.monitor_every_s <= 0:
            return False
        now = time.monotonic()
        if self._last_monitor is None or now - self._last_monitor >= self.monitor_every_s:
            self._last_monitor = now
            return True
        return False

    def _costs_due(self) -> bool:
        spec = self.project.spec
        every = spec.finops.evaluate_every_s if spec is not None else 300.0
        if every <= 0:
            return False
        now = time.monotonic()
        if self._last_costs is None or now - self._last_costs >= every:
            self._last_costs = now
            return True
        return False

    def _meter(
        self,
        report: PassReport,
        cpu_s: float,
        wall_s: float,
        monitor_cpu_s: float,
        monitor_wall_s: float,
    ) -> None:
        """Meter the replicas since the last pass, and this pass's own work (shared costs)."""
        now = self.clock()
        try:
            self.meter.meter(now)
            if monitor_wall_s > 0:
                self.meter.own_work("monitor", cpu_s=monitor_cpu_s, wall_s=monitor_wall_s, at=now)
            self.meter.own_work(
                "controller",
                cpu_s=max(cpu_s - monitor_cpu_s, 0.0),
                wall_s=max(wall_s - monitor_wall_s, 0.0),
                at=now,
            )
        except OpsloopError as exc:
            report.errors.append(f"metering: {exc}")

    def _documents(self, report: PassReport) -> dict[str, DeploymentDocument]:
        try:
            state = self.reconciler.desired()
        except OpsloopError as exc:
            report.errors.append(f"desired state: {exc}")
            return {}
        return {name: loaded.document for name, loaded in state.documents.items()}

    def _check_pins(self, engine: RemediationEngine, report: PassReport) -> None:
        declared = {p.name for p in engine.policies}
        for deployment, policy in sorted(engine.pinned.items()):
            if policy != NO_POLICY and policy not in declared:
                report.errors.append(
                    f"deployment '{deployment}' names remediation policy '{policy}', which "
                    f"opsloop.yaml does not declare: nothing remediates it"
                )
