"""Schedules of ``opsloop.yaml``, run by the loop controller of ``opsloop up``.

Each pass the controller calls :meth:`Scheduler.tick`, which, for every schedule:

* ``cron``: finds the cron times (UTC) since the last one handled. The newest, if it is at
  most ``starting_deadline`` old, is on time and starts a run; older ones passed while the
  loop was down and are *missed*: ``missed: skip`` records them, ``missed: catch-up`` starts
  one run for them (as a Kubernetes CronJob starts one run for its missed schedules);
* ``new_data``: every ``check_every``, asks the source for a token (the files' digest, a
  table's largest watermark, or a fresh load's content digest) and starts a run when it
  changed since the last look;
* ``incident``: starts a run when incidents of the kind opened since the last look.

Before it starts a run, the schedule's concurrency policy decides what happens to a run of
it that still runs: ``forbid`` skips the new one, ``replace`` stops the old one (its process
group), ``allow`` runs both. A run is ``opsloop run [PIPELINE] -p …`` in a process of its own,
so that it outlives neither the controller's pass nor blocks it; its output goes to a log
file under ``.opsloop/runtime/schedules/``. Every due time, with what was done and why, is
recorded in the store (``store.schedules``), and ``opsloop schedules history`` shows it.

A paused schedule (:func:`pause_schedules`; the ``pause_schedules`` remediation action of a
cost incident) records each due time before the pause ends as skipped, with why, and starts
nothing.

The first time the scheduler sees a schedule it only takes its bearings (now, the source's
token, the newest incident): nothing that happened before the schedule existed starts a run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil
from croniter import croniter

from opsloop.data.sources import probe_source
from opsloop.errors import ConfigError, OpsloopError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from opsloop.context import Project
    from opsloop.spec.sources import ScheduleSpec
    from opsloop.store import ScheduleRunInfo

__all__ = ["Scheduler", "TickResult", "pause_schedules", "run_command"]

# Cron times handled in one tick at most: a schedule of every minute after a month down
# records its missed times as one row, and this bounds the work of counting them.
_MAX_TICKS = 100_000


@dataclass
class TickResult:
    """What one tick of the scheduler did.

    Attributes:
        started: Runs started.
        skipped: Due times that started nothing (missed, or forbidden by concurrency).
        finished: Runs that ended since the last tick (succeeded, failed, interrupted).
        replaced: Runs stopped for a newer one.
        errors: Schedules that could not be evaluated, with why.
    """

    started: list[ScheduleRunInfo] = field(default_factory=list)
    skipped: list[ScheduleRunInfo] = field(default_factory=list)
    finished: list[ScheduleRunInfo] = field(default_factory=list)
    replaced: list[ScheduleRunInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The tick as a JSON-ready record (empty when nothing happened)."""
        out: dict[str, Any] = {}
        for key in ("started", "skipped", "finished", "replaced"):
            runs: list[ScheduleRunInfo] = getattr(self, key)
            if runs:
                out[key] = [f"{r.schedule}#{r.id}: {r.status}" for r in runs]
        if self.errors:
            out["errors"] = list(self.errors)
        return out


def pause_schedules(project: Project, names: Sequence[str], until: datetime, why: str) -> list[str]:
    """Pause schedules until a time: each due time before it records a skipped run that
    says why, and starts nothing (the remediation of a cost incident pauses retraining so).
    Returns the schedules paused; a name ``opsloop.yaml`` does not declare is an error.

    Raises:
        ConfigError: A name is not a schedule of ``opsloop.yaml``.
    """
    declared = project.spec.schedules if project.spec is not None else {}
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ConfigError(
            f"no schedule {', '.join(repr(n) for n in unknown)} in opsloop.yaml "
            f"(schedules: {', '.join(sorted(declared)) or 'none'})"
        )
    store = project.store.schedules
    for name in names:
        cursor = store.cursor(name)
        cursor.update(paused_until=until.isoformat(), paused_by=why)
        store.set_cursor(name, cursor)
    return list(names)


def run_command(schedule: ScheduleSpec) -> list[str]:
    """The command a schedule's run is: ``opsloop run [PIPELINE] -p key=value …``."""
    command = [sys.executable, "-m", "opsloop", "run"]
    if schedule.run != "lifecycle":
        command.append(schedule.run)
    for key, value in sorted(schedule.params.items()):
        command += ["-p", f"{key}={value}"]
    return command


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


class Scheduler:
    """Runs the schedules of a project, one tick per pass of the loop.

    Args:
        project: The project.
        command: The command of a schedule's run (default: :func:`run_command`).
        clock: The current time (UTC), for tests.
    """

    def __init__(
        self,
        project: Project,
        *,
        command: Callable[[ScheduleSpec], list[str]] = run_command,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.project = project
        self.command = command
        self.clock = clock or (lambda: datetime.now(UTC))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._paused: tuple[datetime, str] | None = None

    def tick(self, now: datetime | None = None) -> TickResult:
        """Reap the runs that ended, then start what is due (see the module docstring)."""
        now = now or self.clock()
        result = TickResult()
        self._reap(result)
        spec = self.project.spec
        for name, schedule in (spec.schedules if spec is not None else {}).items():
            if schedule.suspend:
                continue
            try:
                self._evaluate(name, schedule, now, result)
            except OpsloopError as exc:
                result.errors.append(f"schedule '{name}': {exc}")
        return result

    def wait(self, timeout_s: float | None = None) -> TickResult:
        """Wait for the runs this scheduler started, then reap them (tests, shutdown)."""
        for proc in list(self._procs.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
        result = TickResult()
        self._reap(result)
        return result

    # -- the triggers ---------------------------------------------------------------------

    def _evaluate(
        self, name: str, schedule: ScheduleSpec, now: datetime, result: TickResult
    ) -> None:
        store = self.project.store.schedules
        cursor = store.cursor(name)
        pause = cursor.get("paused_until")
        self._paused = None
        if pause is not None and now < _utc(pause):
            self._paused = (_utc(pause), str(cursor.get("paused_by", "")))
        if schedule.cron is not None:
            self._cron(name, schedule, schedule.cron, now, cursor, result)
        elif schedule.new_data:
            self._new_data(name, schedule, now, cursor, result)
        else:
            self._incident(name, schedule, cursor, now, result)
        store.set_cursor(name, cursor)

    def _cron(
        self,
        name: str,
        schedule: ScheduleSpec,
        expr: str,
        now: datetime,
        cursor: dict[str, Any],
        result: TickResult,
    ) -> None:
        if cursor.get("cron") != expr or "cron_at" not in cursor:
            # First sight (or a changed expression): count from now.
            cursor.update(cron=expr, cron_at=now.isoformat())
            return
        it = croniter(expr, _utc(cursor["cron_at"]))
        ticks: list[datetime] = []
        while len(ticks) < _MAX_TICKS:
            at = it.get_next(datetime)
            if at > now:
                break
            ticks.append(at)
        if not ticks:
            return
        cursor["cron_at"] = ticks[-1].isoformat()
        deadline = schedule.starting_deadline
        late = [t for t in ticks if now - t > deadline]
        on_time = [t for t in ticks if now - t <= deadline]
        store = self.project.store.schedules
        missed = {"missed": len(late), "first_missed": late[0].isoformat()} if late else {}
        if late and (schedule.missed == "skip" or on_time):
            reason = f"{len(late)} cron time(s) passed while the loop was not running"
            if on_time:
                reason += " (the run on time covers them)" if schedule.missed == "catch-up" else ""
            result.skipped.append(
                store.add_run(
                    name,
                    trigger="cron",
                    due_at=late[-1],
                    status="skipped",
                    reason=reason + f" (missed: {schedule.missed})",
                    details=missed,
                )
            )
        if on_time:
            self._start(name, schedule, "cron", on_time[-1], {}, result)
        elif late and schedule.missed == "catch-up":
            self._start(name, schedule, "catch-up", late[-1], missed, result)

    def _new_data(
        self,
        name: str,
        schedule: ScheduleSpec,
        now: datetime,
        cursor: dict[str, Any],
        result: TickResult,
    ) -> None:
        checked = cursor.get("checked_at")
        if checked is not None and now - _utc(checked) < schedule.check_every:
            return
        spec = self.project.spec
        if spec is None or spec.data is None:
            raise ConfigError("a new_data schedule needs a 'data' section with a source")
        token = probe_source(self.project, spec.data)
        previous = cursor.get("token")
        cursor.update(checked_at=now.isoformat(), token=token)
        if previous is None or previous == token:
            return
        self._start(name, schedule, "new_data", now, {"token": token, "was": previous}, result)

    def _incident(
        self,
        name: str,
        schedule: ScheduleSpec,
        cursor: dict[str, Any],
        now: datetime,
        result: TickResult,
    ) -> None:
        kind = schedule.incident
        incidents = self.project.store.incidents.list(kind=kind, limit=100)
        newest = max((i.id for i in incidents), default=0)
        last = cursor.get("incident_id")
        cursor["incident_id"] = max(newest, int(last or 0))
        if last is None:
            return
        new = sorted(i.id for i in incidents if i.id > int(last))
        if new:
            self._start(name, schedule, "incident", now, {"incidents": new, "kind": kind}, result)

    # -- runs ---------------------------------------------------------------------------------

    def _start(
        self,
        name: str,
        schedule: ScheduleSpec,
        trigger: str,
        due_at: datetime,
        details: dict[str, Any],
        result: TickResult,
    ) -> None:
        store = self.project.store.schedules
        skip: str | None = None
        running: list[ScheduleRunInfo] = []
        if self._paused is not None:
            until, why = self._paused
            skip = f"paused until {until:%Y-%m-%d %H:%M} UTC" + (f" ({why})" if why else "")
        else:
            running = [r for r in store.active(name) if self._alive(r)]
            if running and schedule.concurrency == "forbid":
                ids = ", ".join(f"#{r.id}" for r in running)
                skip = f"run {ids} still runs (concurrency: forbid)"
        if skip is not None:
            result.skipped.append(
                store.add_run(
                    name,
                    trigger=trigger,
                    due_at=due_at,
                    status="skipped",
                    reason=skip,
                    details=details,
                )
            )
            return
        if running and schedule.concurrency == "replace":
            for run in running:
                self._stop(run)
                result.replaced.append(
                    store.finish_run(run.id, status="replaced", reason="replaced by a newer run")
                )
        command = self.command(schedule)
        folder = self.project.state_dir / "runtime" / "schedules"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = due_at.strftime("%Y%m%dT%H%M%S")
        log = _log_path(folder, name, stamp)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=self.project.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "OPSLOOP_SCHEDULE": name},
            )
        relative = log.relative_to(self.project.dir).as_posix()
        row = store.add_run(
            name,
            trigger=trigger,
            due_at=due_at,
            status="running",
            pid=proc.pid,
            reason=f"{trigger} at {due_at:%Y-%m-%d %H:%M:%S} UTC",
            details={**details, "command": command[2:], "log": relative},
        )
        self._procs[row.id] = proc
        result.started.append(row)

    def _alive(self, run: ScheduleRunInfo) -> bool:
        proc = self._procs.get(run.id)
        if proc is not None:
            return proc.poll() is None
        return run.pid is not None and _pid_alive(run.pid)

    def _stop(self, run: ScheduleRunInfo) -> None:
        proc = self._procs.pop(run.id, None)
        pid = proc.pid if proc is not None else run.pid
        if pid is None:
            return
        try:
            # The run leads its own process group: stop it with everything it started.
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                proc.wait()

    def _reap(self, result: TickResult) -> None:
        store = self.project.store.schedules
        for run_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[run_id]
            status = "succeeded" if code == 0 else "failed"
            result.finished.append(
                store.finish_run(run_id, status=status, reason=f"exit code {code}")
            )
        for run in store.active():
            if run.id not in self._procs and not self._alive(run):
                result.finished.append(
                    store.finish_run(
                        run.id,
                        status="interrupted",
                        reason="its process was gone (the loop that started it stopped)",
                    )
                )


def _pid_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _log_path(folder: Path, name: str, stamp: str) -> Path:
    path = folder / f"{name}-{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{stamp}-{n}.log"
    return path
