"""The closed loop, shown on the churn example: serve, drift, detect, heal.

After the lifecycle registered a champion, :func:`run_loop_demo` deploys it through Git
(``churn-prod``), replays traffic whose inputs and churn relation drift window after window
(labels come back as feedback), runs a monitoring pass after each window, and when the
quality alert opens an incident lets the remediation policy retrain on the recent labelled
traffic, try the new version as a canary and promote it. It ends with the incident's timeline
and the quality before and after.

Windows are short (``window_s``) and every pass names its ``until``, so the demo does not
wait for the monitor's grace period.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sklearn.metrics import roc_auc_score

from opsloop.aiops.incidents import TimelineEntry, get_incident, list_actions, timeline
from opsloop.context import open_project
from opsloop.data import resolve_source
from opsloop.data.sources import read_data
from opsloop.errors import ConfigError, GitOpsError, OpsloopError
from opsloop.finops import allocated_costs, cost_breakdown, incident_cost
from opsloop.gitops import HealthStatus, promote
from opsloop.loop.controller import Controller
from opsloop.loop.traffic import drifted_sample, send_feedback, send_requests
from opsloop.monitor.windows import align

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from opsloop.aiops.actions import ActionContext, ActionResult
    from opsloop.context import Project
    from opsloop.loop.monitoring import MonitorStepResult
    from opsloop.spec.schema import DataSection
    from opsloop.store import ActionInfo

__all__ = [
    "DEPLOYMENT",
    "LoopDemoResult",
    "WindowRow",
    "loop_sections",
    "run_loop_demo",
    "window_shares",
]

DEPLOYMENT = "churn-prod"
"""The deployment the demo serves."""

_QUALITY_ALERT = "churn-quality-drop"
_POLICY = "churn-retrain"
# Drift level of each window before the remediation; the windows after it stay at the end
# level. Two windows of the alert's 'for: 2' see the drifted relation.
_LEVELS = (0.0, 0.0, 0.8, 1.0)
_MAX_WINDOWS = 8
_GIT_IDENTITY = ["-c", "user.name=opsloop", "-c", "user.email=opsloop@localhost"]


def loop_sections(window_s: float, *, min_rows: int) -> str:
    """The ``alerts`` and ``remediation`` sections the demo adds to ``opsloop.yaml``.

    Args:
        window_s: The monitoring window, in seconds: the retrain reads the labelled traffic
            since the alert's first bad point (a point is stamped with the start of its
            window), that is the two drifted windows. Its window reaches back four windows,
            so that both are read even when the demo skipped a window between them (a pass
            that ran late on a busy machine).
        min_rows: Unused by the policy; stated in the comment for the reader.
    """
    retrain_window = round(4.25 * window_s)
    return f"""
# Added by 'opsloop quickstart': a quality alert on the deployment, and the policy that
# heals it (the retrain reads the recent labelled traffic, at least {min_rows} rows).
alerts:
  rules:
    - name: {_QUALITY_ALERT}
      series: quality.roc_auc
      where: {{deployment: {DEPLOYMENT}}}
      op: "<"
      threshold: 0.65
      for: 2
      severity: critical
      category: quality_drop
      summary: ROC AUC of the served model on the labels that came back
remediation:
  policies:
    - name: {_POLICY}
      on: {{kinds: [quality_drop], deployments: [{DEPLOYMENT}]}}
      actions: [retrain, canary, promote]
      cooldown_s: 600
      max_actions_per_day: 3
      retrain:
        window_s: {retrain_window}
        since_incident: true
        overrides: {{trials: 4, timeout_s: 30}}
      canary: {{weight: 30, hold_s: 6, min_requests: 30, max_metric_drop: 0.02}}
"""


@dataclass
class WindowRow:
    """One window of the demo.

    Attributes:
        index: Window number, from 1.
        level: Drift level of the traffic sent.
        until: End of the window.
        requests: Requests answered.
        roc_auc: ROC AUC of the answers against the true labels.
        drift_share: Share of drifting features the monitor found, per model version.
        opened: Incidents the pass opened.
        phase: ``before`` or ``after`` the remediation.
    """

    index: int
    level: float
    until: datetime
    requests: int
    roc_auc: float | None
    drift_share: dict[str, float]
    opened: list[int]
    phase: str


@dataclass
class LoopDemoResult:
    """What the demo did.

    Attributes:
        deployment: The deployment.
        base_url: Where its server answers.
        first_version: The version deployed first.
        incident_id: The incident the drift opened (None if none did).
        promoted_version: The version the remediation promoted (None if none was).
        windows: Every window, in order.
        actions: The incident's remediation actions.
        timeline: The incident's timeline.
    """

    deployment: str
    base_url: str
    first_version: int
    incident_id: int | None = None
    promoted_version: int | None = None
    windows: list[WindowRow] = field(default_factory=list)
    actions: list[ActionInfo] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    def quality(self, phase: str) -> float | None:
        """Mean ROC AUC of the drifted windows of a phase (``before`` / ``after``)."""
        values = [
            w.roc_auc
            for w in self.windows
            if w.phase == phase and w.level > 0 and w.roc_auc is not None
        ]
        return sum(values) / len(values) if values else None


def window_shares(
    step: MonitorStepResult | None, deployment: str, since: datetime, until: datetime
) -> dict[str, float]:
    """The share of drifting features per model version that a monitoring step found in the
    window ``[since, until)`` of ``deployment`` (empty when it monitored no such window)."""
    shares: dict[str, float] = {}
    for w in step.monitor.windows if step is not None else []:
        if w.deployment == deployment and w.since == since and w.until == until:
            shares.update(w.share)
    return shares


def _git(project: Project, *args: str) -> None:
    subprocess.run(
        ["git", *_GIT_IDENTITY, *args],
        cwd=project.dir,
        check=True,
        capture_output=True,
        text=True,
    )


def _prepare(project: Project, window_s: float, min_rows: int) -> None:
    """Add the loop's sections to ``opsloop.yaml`` and put the project under Git."""
    spec_file = project.dir / "opsloop.yaml"
    text = spec_file.read_text(encoding="utf-8")
    has_alerts = any(line.startswith("alerts:") for line in text.splitlines())
    has_policies = any(line.startswith("remediation:") for line in text.splitlines())
    if has_alerts != has_policies:
        raise ConfigError(
            f"{spec_file} has an 'alerts' or a 'remediation' section but not both: the loop "
            "demo adds both itself"
        )
    if not has_alerts:
        spec_file.write_text(
            text.rstrip("\n") + "\n" + loop_sections(window_s, min_rows=min_rows),
            encoding="utf-8",
        )
    ignore = project.dir / ".gitignore"
    wanted = [".opsloop/", "data/retrain/"]
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    missing = [w for w in wanted if w not in lines]
    if missing:
        ignore.write_text("\n".join([*lines, *missing]) + "\n", encoding="utf-8")
    if not (project.dir / ".git").exists():
        _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    status = subprocess.run(
        ["git", "status", "--porcelain"],
        check=True,
        cwd=project.dir,
        capture_output=True,
        text=True,
    )
    if status.stdout.strip():
        _git(project, "commit", "-q", "-m", "churn project with its loop sections")


def _roc_auc(scores: list[float | None], labels: Any) -> float | None:
    pairs = [(s, int(y)) for s, y in zip(scores, labels, strict=True) if s is not None]
    ys = {y for _, y in pairs}
    if len(ys) < 2:
        return None
    return float(roc_auc_score([y for _, y in pairs], [s for s, _ in pairs]))


class _Background:
    """Drifted traffic with its labels, sent in small rounds while a canary holds."""

    def __init__(self, base_url: str, data: pd.DataFrame, level: float, seed: int) -> None:
        self.base_url = base_url
        self.data = data
        self.level = level
        self.seed = seed
        self.sent = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop-traffic", daemon=True)

    def _run(self) -> None:
        round_ = 0
        while not self._stop.is_set():
            round_ += 1
            inputs, labels = drifted_sample(
                self.data, 20, self.level, seed=self.seed * 1000 + round_
            )
            try:
                replay = send_requests(self.base_url, inputs, concurrency=2)
                send_feedback(self.base_url, replay.request_ids, labels, concurrency=2)
            except Exception as exc:
                # A thread's exception would vanish: keep it for the demo to report.
                self.error = f"{type(exc).__name__}: {exc}"
                return
            self.sent += len(inputs) - replay.failed
            self._stop.wait(0.2)

    def __enter__(self) -> _Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class _TrafficDuringCanary:
    """The controller's executor, with drifted traffic sent while a canary holds: in the demo
    nobody else sends requests, and a canary is judged on the requests it serves."""

    def __init__(self, inner: Any, base_url: str, data: pd.DataFrame, seed: int) -> None:
        self.inner = inner
        self.base_url = base_url
        self.data = data
        self.seed = seed
        self.error: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def canary(self, context: ActionContext) -> ActionResult:
        background = _Background(self.base_url, self.data, _LEVELS[-1], self.seed)
        with background:
            result: ActionResult = self.inner.canary(context)
        self.error = background.error
        return result


# One story told in order (serve, drift, detect, heal), each step with its own output: split up
# it reads worse.
def _print_costs(
    project: Project,
    console: Console,
    model: str,
    first: int,
    promoted: int | None,
    actions: Sequence[ActionInfo] = (),
) -> None:
    """What the loop cost, priced by the project's rate cards (the example card unless
    opsloop.yaml declares its own); the canary the remediation ran is shown within serving."""
    spec = project.spec
    if spec is None:
        return
    store = project.store
    runs: dict[str, str] = {}
    for version, label in ((first, "training and tuning"), (promoted, "remediation: retrain")):
        if version is None:
            continue
        run_id = store.models.get_version(model, version).run_id
        if run_id:
            runs[run_id] = f"{label} (v{version})"
    try:
        allocated = allocated_costs(store, spec.finops)
        lines = cost_breakdown(allocated, runs)
        canaries = [(w, c) for w, c in incident_cost(allocated, actions) if w.startswith("canary")]
    except OpsloopError as exc:
        console.print(f"costs: {exc}")
        return
    cards = ", ".join(c.name for c in spec.finops.rate_cards)
    table = Table(
        title=f"what the loop cost ({spec.finops.currency})",
        caption=f"rate card: {cards} (opsloop.yaml finops:)",
    )
    table.add_column("what")
    table.add_column("cost", justify="right")
    for label, cost in lines:
        table.add_row(label, f"{cost:.6f}")
        if label == "serving":
            for what, part in canaries:
                table.add_row(f"  of which remediation: {what}", f"{part:.6f}", style="dim")
    table.add_row("total", f"{sum(c for _l, c in lines):.6f}", style="bold")
    console.print(table)


def _training_data(project: Project, data: DataSection) -> pd.DataFrame:
    if isinstance(data.source, str):
        return pd.concat(
            [pd.read_parquet(f) for f in resolve_source(data.source, base_dir=project.dir)],
            ignore_index=True,
        )
    return read_data(project, data)


def run_loop_demo(
    project: Project,
    console: Console,
    *,
    window_s: float = 20.0,
    requests_per_window: int = 600,
    seed: int = 0,
    stop_server: bool = True,
) -> LoopDemoResult:
    """Deploy the champion, drift its traffic, and let the loop heal it.

    The loop is :class:`~opsloop.loop.controller.Controller`'s, as under ``opsloop up``: each
    window ends with one of its passes (reconcile, monitor, alert, correlate, remediate,
    record). The demo adds the traffic and the labels that come back.

    Args:
        project: A project whose lifecycle registered a ``champion`` (the churn example).
        console: Where the demo prints.
        window_s: Monitoring window, in seconds (written into the deployment's document).
        requests_per_window: Single-row requests sent in each window (the retrain reads two
            drifted windows, and the data contract wants at least 1000 rows).
        seed: Seed of the traffic.
        stop_server: Stop the deployment's server at the end.

    Raises:
        ConfigError: The project declares no lifecycle, or half of the loop's sections.
        GitOpsError: The deployment does not become healthy.
    """
    spec = project.spec
    if spec is None or spec.problem is None or spec.data is None:
        raise ConfigError(f"{project.dir / 'opsloop.yaml'} declares no lifecycle to loop over")
    _prepare(project, window_s, min_rows=requests_per_window * 2)
    # The sections were just written: read the spec again.
    project = open_project(project.dir)
    spec = project.spec
    assert spec is not None and spec.data is not None and spec.problem is not None
    registration = spec.registration
    model = registration.model if registration is not None else spec.project
    champion = project.store.models.get_version_by_alias(model, "champion")

    console.rule("[bold]the loop: serve → drift → detect → heal")
    change = promote(
        model,
        to=DEPLOYMENT,
        version=champion.version,
        alias=None,
        project=project,
        monitoring={"window": f"{window_s:g}s"},
        remediation=_POLICY,
    )
    console.print(f"[green]✓[/green] Git: {change.message}")
    controller = Controller(project, monitor_every_s=0)
    with console.status(f"starting the model server of {DEPLOYMENT} …"):
        first = controller.run_pass(monitor=False)
    outcome = first.sync.outcome(DEPLOYMENT) if first.sync is not None else None
    if outcome is None or outcome.health != HealthStatus.HEALTHY or not outcome.endpoints:
        controller.runtime.stop(DEPLOYMENT)
        reason = outcome.reason if outcome is not None else "; ".join(first.errors)
        raise GitOpsError(f"deployment {DEPLOYMENT} did not become healthy: {reason}")
    base_url = outcome.endpoints[0]
    console.print(
        f"[green]✓[/green] sync: {DEPLOYMENT} serves {model} v{champion.version} on {base_url}"
    )
    result = LoopDemoResult(DEPLOYMENT, base_url, champion.version)

    data = _training_data(project, spec.data)
    drop = [*spec.features.drop, *([spec.data.time_column] if spec.data.time_column else [])]
    traffic = _TrafficDuringCanary(controller.executor, base_url, data, seed)
    controller.executor = traffic
    window = timedelta(seconds=window_s)
    table = Table(title=f"{DEPLOYMENT}: one row per {window_s:g}s monitoring window")
    for name in (
        "window",
        "drift level",
        "requests",
        "ROC AUC (served)",
        "drift share",
        "incident",
    ):
        table.add_column(name, justify="right")

    try:
        after_left = 1
        next_start: datetime | None = None
        for index in range(1, _MAX_WINDOWS + 1):
            phase = "after" if result.promoted_version is not None else "before"
            level = _LEVELS[index - 1] if index <= len(_LEVELS) else _LEVELS[-1]
            now = datetime.now(UTC)
            # The next window starts where the last one ended, unless that is long past.
            if next_start is None or (now - next_start) > window / 4:
                next_start = align(now, window) + window
            start = next_start
            with console.status(f"waiting for the next window ({start:%H:%M:%S} UTC) …"):
                time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            inputs, labels = drifted_sample(
                data,
                requests_per_window,
                level,
                target=spec.problem.target,
                drop=drop,
                seed=seed + index,
            )
            with Progress(
                TextColumn("[bold]window {task.fields[index]}[/bold] drift {task.fields[level]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task(
                    "requests", total=len(inputs), index=index, level=f"{level:.1f}"
                )
                replay = send_requests(base_url, inputs, advance=partial(progress.advance, task))
                progress.update(task, description="labels (delayed)")
                time.sleep(1.0)
                send_feedback(base_url, replay.request_ids, labels)
            end = next_start = start + window
            with console.status("window closing, then a pass of the loop …"):
                time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)
                report = controller.run_pass(until=end, monitor=True)
            step = report.monitored
            # The share of the window just sent: a pass may also close windows it missed.
            shares = window_shares(step, DEPLOYMENT, start, end)
            opened = list(step.opened) if step is not None else []
            row = WindowRow(
                index,
                level,
                end,
                len(inputs) - replay.failed,
                _roc_auc(replay.scores, labels),
                shares,
                opened,
                phase,
            )
            result.windows.append(row)
            table.add_row(
                str(index),
                f"{level:.1f}",
                str(row.requests),
                "-" if row.roc_auc is None else f"{row.roc_auc:.3f}",
                ", ".join(f"{k}: {v:.2f}" for k, v in sorted(shares.items())) or "-",
                ", ".join(f"#{i} opened" for i in row.opened) or "",
            )
            console.print(
                f"window {index}: drift {level:.1f}, {row.requests} requests, ROC AUC "
                + ("-" if row.roc_auc is None else f"{row.roc_auc:.3f}")
                + (f", [red]incident #{row.opened[0]} opened[/red]" if row.opened else "")
            )
            for error in report.errors:
                console.print(f"[yellow]loop: {error}[/yellow]")
            if phase == "after":
                after_left -= 1
                if after_left <= 0:
                    break
            if row.opened and result.incident_id is None:
                result.incident_id = row.opened[0]
            actions = report.remediated.get(result.incident_id or -1, [])
            if actions:
                incident = get_incident(project.store, result.incident_id or -1)
                console.print(
                    f"[bold red]incident #{incident.id}[/bold red] {incident.kind}: "
                    f"{incident.title}; remediation policy '{_POLICY}' acted"
                )
                if traffic.error:
                    console.print(f"[yellow]traffic during the canary stopped: {traffic.error}")
                for a in actions:
                    colour = "green" if a.status == "succeeded" else "red"
                    said = a.result.get("did") if a.status == "succeeded" else a.error
                    console.print(f"  [{colour}]{a.action}: {a.status}[/{colour}] {said or ''}")
                    if a.action == "promote" and a.status == "succeeded":
                        result.promoted_version = int(a.result["version"])
                if result.promoted_version is None:
                    break
        console.print(table)
        if result.incident_id is not None:
            result.actions = list_actions(project.store, result.incident_id)
            result.timeline = timeline(project.store, result.incident_id)
            tl = Table(title=f"incident #{result.incident_id}: timeline")
            for name in ("time (UTC)", "type", "what"):
                tl.add_column(name)
            for entry in result.timeline:
                did = (
                    (entry.details.get("result") or {}).get("did")
                    if entry.type == "action"
                    else None
                )
                tl.add_row(
                    f"{entry.time:%H:%M:%S}", entry.type, entry.what + (f": {did}" if did else "")
                )
            console.print(tl)
        before, after = result.quality("before"), result.quality("after")
        if before is not None and after is not None:
            console.print(
                f"ROC AUC on drifted traffic: [red]{before:.3f}[/red] with v{champion.version} "
                f"→ [green]{after:.3f}[/green] with v{result.promoted_version}"
            )
        _print_costs(
            project, console, model, champion.version, result.promoted_version, result.actions
        )
    finally:
        if stop_server:
            controller.runtime.stop(DEPLOYMENT)
            console.print(f"stopped the model server of {DEPLOYMENT}")
        else:
            console.print(
                f"{DEPLOYMENT} still serves on {base_url}; to stop it, remove "
                f"deploy/{DEPLOYMENT}.yaml in Git and run 'opsloop sync' in {project.dir}"
            )
        project.close()
    return result
