"""Metering what the loop runs between its passes: serving replicas, storage, the controller.

Pipeline steps meter themselves where they finish (one record per step, written by the
pipeline runner); what lives on between passes is metered here, once per pass of the loop:

- a model server replica costs its reservation (the CPU and memory requests of its deployment
  document) for its uptime; the CPU it used and the memory it held are measured from its
  process, and the requests it served come from the prediction log;
- stored bytes (the runs' artifacts, the prediction log) are held for the time between two
  storage passes (a scan, so it runs every ``storage_every_s`` only);
- the controller and the monitors meter their own CPU time (shared costs, spread by the
  allocation).

Everything here reads the store's own records (what the reconciler saw of each deployment),
never a runtime: a pass adds one batch of hourly rows and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psutil

from opsloop.store.types import UsageRecord

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opsloop.spec.finops import FinopsSection
    from opsloop.store import DeploymentRecord, Store

__all__ = [
    "GB",
    "LoopMeter",
    "charge_of",
    "cpu_quantity",
    "memory_quantity",
    "split_by_hour",
]

GB = 2**30
"""Bytes in a GB as opsloop prices it (GiB)."""

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)\Z")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|)\Z")
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_quantity(value: str | None) -> float:
    """vCPUs of a Kubernetes CPU quantity (``500m`` is 0.5); 0 when unset or unreadable."""
    match = _CPU.match(value or "")
    if match is None:
        return 0.0
    number = float(match.group(1))
    return number / 1000 if match.group(2) else number


def memory_quantity(value: str | None) -> float:
    """GB of a Kubernetes memory quantity (``512Mi`` is 0.5); 0 when unset or unreadable."""
    match = _MEMORY.match(value or "")
    if match is None:
        return 0.0
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)] / GB


def charge_of(project: str, finops: FinopsSection | None) -> dict[str, str]:
    """The dimensions the project's usage is charged to: its name and the ``finops`` tags."""
    if finops is None:
        return {"project": project}
    dims = {
        "project": project,
        "team": finops.team,
        "cost_centre": finops.cost_centre,
        "environment": finops.environment,
    }
    return {k: v for k, v in dims.items() if v}


def split_by_hour(since: datetime, until: datetime) -> Iterator[tuple[datetime, float]]:
    """The parts of ``[since, until)`` in each UTC hour: ``(a time in the hour, seconds)``."""
    start = since
    while start < until:
        next_hour = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        end = min(next_hour, until)
        yield start, (end - start).total_seconds()
        start = end


@dataclass
class _ProcessMark:
    cpu_s: float
    at: datetime


@dataclass
class LoopMeter:
    """Meters replicas, storage and the loop's own work, pass after pass.

    The first pass only takes the marks the next one measures from.

    Args:
        store: The metadata store.
        charge: Dimensions every record carries (project, team, cost centre, environment);
            a deployment's labels ``team``, ``cost-centre`` and ``environment`` override them.
        storage_every_s: Seconds between two storage scans.
    """

    store: Store
    charge: dict[str, str] = field(default_factory=dict)
    storage_every_s: float = 600.0
    _last: datetime | None = None
    _last_storage: datetime | None = None
    _marks: dict[tuple[int, float], _ProcessMark] = field(default_factory=dict)
    _last_request: int | None = None

    def meter(self, now: datetime | None = None) -> int:
        """Meter what ran since the last pass; returns the usage rows written."""
        now = now or datetime.now(UTC)
        records: list[UsageRecord] = []
        deployments = self.store.deployments.list()
        if self._last is not None and now > self._last:
            records.extend(self.replica_records(deployments, self._last, now))
            records.extend(self._request_records(deployments, self._last, now))
        elif self._last is None:
            seen: set[tuple[int, float]] = set()
            for dep in deployments:
                self._processes(dep.live, now, seen)
            _counts, self._last_request = self.store.usage.requests_after(None)
        if self._last_storage is None:
            self._last_storage = now
        elif (now - self._last_storage).total_seconds() >= self.storage_every_s:
            records.extend(self.storage_records(self._last_storage, now))
            self._last_storage = now
        self._last = now
        return self.store.usage.add(records)

    def own_work(self, kind: str, *, cpu_s: float, wall_s: float, at: datetime) -> int:
        """Meter the loop's own work (``controller``, ``monitor``): a shared cost."""
        record = UsageRecord(at, kind, self._dims({}), {"cpu_s": cpu_s, "wall_s": wall_s})
        return self.store.usage.add([record])

    # -- the parts ----------------------------------------------------------------------------

    def _dims(self, labels: dict[str, str], **more: str) -> dict[str, str]:
        dims = dict(self.charge)
        for label, dim in (("team", "team"), ("cost-centre", "cost_centre")):
            if labels.get(label):
                dims[dim] = labels[label]
        if labels.get("environment"):
            dims["environment"] = labels["environment"]
        dims.update(more)
        return {k: v for k, v in dims.items() if v}

    def replica_records(
        self, deployments: list[DeploymentRecord], since: datetime, until: datetime
    ) -> list[UsageRecord]:
        """Reservation, CPU used and memory held by every running replica in the interval."""
        records: list[UsageRecord] = []
        seen: set[tuple[int, float]] = set()
        for dep in deployments:
            spec: dict[str, Any] = dep.live.get("spec") or {}
            running = int(dep.live.get("running") or 0)
            if not spec or running <= 0:
                continue
            requests = (spec.get("resources") or {}).get("requests") or {}
            cpu = cpu_quantity(requests.get("cpu")) * running
            memory = memory_quantity(requests.get("memory")) * running
            used_cpu, rss_gb = self._processes(dep.live, until, seen)
            dims = self._dims(
                spec.get("labels") or {},
                deployment=dep.name,
                model=str(spec.get("model") or ""),
                version=str(spec.get("version") or ""),
            )
            total = (until - since).total_seconds()
            for at, seconds in split_by_hour(since, until):
                share = seconds / total
                quantities = {
                    "wall_s": seconds * running,
                    "reserved_cpu_s": cpu * seconds,
                    "reserved_memory_gb_s": memory * seconds,
                    "cpu_s": used_cpu * share,
                    "memory_gb_s": rss_gb * seconds,
                }
                records.append(UsageRecord(at, "replica", dims, quantities))
        # Marks of processes that are gone would otherwise pile up.
        for key in set(self._marks) - seen:
            del self._marks[key]
        return records

    def _processes(
        self, live: dict[str, Any], now: datetime, seen: set[tuple[int, float]]
    ) -> tuple[float, float]:
        """CPU seconds the live replica processes used since their last mark, and the GB
        they hold now (0, 0 where the runtime names no local process)."""
        used, rss = 0.0, 0.0
        replicas = (live.get("details") or {}).get("replicas") or []
        for replica in replicas:
            if not isinstance(replica, dict) or not replica.get("alive") or not replica.get("pid"):
                continue
            try:
                proc = psutil.Process(int(replica["pid"]))
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    cpu = float(times.user + times.system)
                    rss += proc.memory_info().rss / GB
            except (psutil.Error, ValueError):
                continue
            seen.add(key)
            mark = self._marks.get(key)
            # A process first seen now is measured from its next pass on: its CPU time so
            # far may belong to earlier intervals.
            if mark is not None:
                used += max(cpu - mark.cpu_s, 0.0)
            self._marks[key] = _ProcessMark(cpu, now)
        return used, rss

    def _request_records(
        self, deployments: list[DeploymentRecord], since: datetime, until: datetime
    ) -> list[UsageRecord]:
        """The requests logged since the last pass, charged to this pass's hour."""
        labels = {d.name: ((d.live.get("spec") or {}).get("labels") or {}) for d in deployments}
        records = []
        counts, self._last_request = self.store.usage.requests_after(self._last_request)
        for deployment, model, version, count in counts:
            dims = self._dims(
                labels.get(deployment, {}), deployment=deployment, model=model, version=version
            )
            records.append(UsageRecord(until, "replica", dims, {"requests": float(count)}))
        return records

    def storage_records(self, since: datetime, until: datetime) -> list[UsageRecord]:
        """Bytes held by the runs' artifacts and the prediction log over the interval."""
        seconds = (until - since).total_seconds()
        records = []
        for run, size in self.store.usage.artifact_bytes().items():
            dims = self._dims({}, run=run)
            quantities = {"storage_gb_s": size / GB * seconds}
            records.append(UsageRecord(until, "storage", dims, quantities))
        for deployment, size in self.store.usage.prediction_log_bytes().items():
            dims = self._dims({}, deployment=deployment)
            records.append(
                UsageRecord(until, "storage", dims, {"storage_gb_s": size / GB * seconds})
            )
        return records
