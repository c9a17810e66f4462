"""Rightsizing: replicas and per-replica requests from observed utilisation and latency.

For each deployment, from its metered replica usage over a period (hourly rows):

- the CPU it needs is the 95th percentile of its hourly CPU use (vCPUs, all replicas
  together) divided by a target utilisation (70 % by default: headroom for bursts);
- the memory a replica needs is the largest mean a replica held in any hour, plus 20 %;
- the replicas are as few as carry that CPU with at most the current per-replica request
  (never below the document's ``objectives.min_replicas``), and the per-replica CPU request
  is what each then needs, rounded up to 50 millicores; memory to 64 MiB;
- the latency objective of the document (``objectives.latency_p99_ms``) guards it: a
  deployment whose observed p99 latency is over its objective is not shrunk; one more replica
  is recommended instead. Without an objective or without latency observations the
  replicas are kept and only the per-replica requests are fitted.

The monthly saving is the reservation it frees (or adds: a negative saving) for 730 hours at
the serving prices of the rate card valid now. These are the rules Kubernetes' vertical pod
autoscaler recommender and OpenCost's request-sizing follow in spirit (a percentile of usage
plus a margin), kept simple enough to explain in a commit message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.finops.metering import GB

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.spec.finops import FinopsSection

__all__ = [
    "HOURS_PER_MONTH",
    "Recommendation",
    "Sizing",
    "cpu_text",
    "memory_text",
    "recommend",
]

HOURS_PER_MONTH = 730.0
TARGET_UTILISATION = 0.7
MEMORY_MARGIN = 1.2
_CPU_STEP = 0.05  # vCPU
_MEMORY_STEP = 64 * 2**20 / GB  # GB


@dataclass(frozen=True)
class Sizing:
    """How a deployment is sized now, and what it must keep.

    Attributes:
        replicas: Replicas.
        cpu: vCPUs requested per replica (0: none requested).
        memory_gb: GB requested per replica (0: none requested).
        latency_p99_ms: The p99 latency objective, if declared.
        min_replicas: The fewest replicas allowed.
    """

    replicas: int
    cpu: float
    memory_gb: float
    latency_p99_ms: float | None = None
    min_replicas: int = 1


@dataclass(frozen=True)
class Recommendation:
    """A deployment's recommended sizing.

    Attributes:
        deployment: The deployment.
        current: How it is sized now.
        replicas: Recommended replicas.
        cpu: Recommended vCPUs per replica.
        memory_gb: Recommended GB per replica.
        monthly_saving: What the change saves a month (negative: it costs more).
        hours: Hours of usage observed.
        cpu_p95: 95th percentile of the hourly CPU use (vCPUs, all replicas).
        memory_peak_gb: Largest mean memory a replica held in an hour.
        latency_p99_ms: Observed p99 latency (the largest of the period), if any.
        reason: Why, in one line.
    """

    deployment: str
    current: Sizing
    replicas: int
    cpu: float
    memory_gb: float
    monthly_saving: float
    hours: int
    cpu_p95: float
    memory_peak_gb: float
    latency_p99_ms: float | None
    reason: str

    @property
    def changes(self) -> bool:
        """Whether it recommends anything other than what runs."""
        return (self.replicas, cpu_text(self.cpu), memory_text(self.memory_gb)) != (
            self.current.replicas,
            cpu_text(self.current.cpu),
            memory_text(self.current.memory_gb),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "deployment": self.deployment,
            "current": {
                "replicas": self.current.replicas,
                "cpu": cpu_text(self.current.cpu),
                "memory": memory_text(self.current.memory_gb),
            },
            "recommended": {
                "replicas": self.replicas,
                "cpu": cpu_text(self.cpu),
                "memory": memory_text(self.memory_gb),
            },
            "monthly_saving": round(self.monthly_saving, 4),
            "hours": self.hours,
            "cpu_p95": round(self.cpu_p95, 4),
            "memory_peak_gb": round(self.memory_peak_gb, 4),
            "latency_p99_ms": self.latency_p99_ms,
            "reason": self.reason,
        }


def cpu_text(vcpus: float) -> str:
    """A CPU quantity for the document (``250m``, ``2``)."""
    milli = round(vcpus * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_text(gb: float) -> str:
    """A memory quantity for the document (``512Mi``, ``2Gi``)."""
    mib = round(gb * 1024)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 and mib else f"{mib}Mi"


def _ceil_to(value: float, step: float) -> float:
    return max(math.ceil(value / step - 1e-9), 1) * step


def recommend(
    deployment: str,
    usage: pd.DataFrame,
    sizing: Sizing,
    finops: FinopsSection,
    *,
    latency_p99_ms: float | None = None,
    now: datetime | None = None,
) -> Recommendation:
    """The recommendation of one deployment (see the module docstring).

    Args:
        deployment: The deployment.
        usage: Usage rows (as :func:`~opsloop.finops.usage_frame` returns them) of the period.
        sizing: How it is sized now, and its objectives.
        finops: The rate cards (the one valid ``now`` prices the saving).
        latency_p99_ms: The observed p99 latency of the period, if measured.
        now: When (default now).
    """
    rows = usage[
        (usage["kind"].astype(str) == "replica").to_numpy()
        & (usage["deployment"].astype(str) == deployment).to_numpy()
        & (usage["wall_s"].to_numpy(dtype=float) > 0)
    ]
    hourly = rows.groupby("hour", observed=True)[["cpu_s", "memory_gb_s", "wall_s"]].sum()
    hours = len(hourly)
    cpu_used = hourly["cpu_s"].to_numpy(dtype=float) / 3600.0
    per_replica_mem = np.divide(
        hourly["memory_gb_s"].to_numpy(dtype=float),
        hourly["wall_s"].to_numpy(dtype=float),
    )
    cpu_p95 = float(np.percentile(cpu_used, 95)) if hours else 0.0
    mem_peak = float(per_replica_mem.max()) if hours else 0.0
    need_cpu = cpu_p95 / TARGET_UTILISATION
    floor = max(sizing.min_replicas, 1)
    objective = sizing.latency_p99_ms
    if hours == 0:
        replicas, cpu, memory = sizing.replicas, sizing.cpu, sizing.memory_gb
        reason = "no usage metered in the period: nothing to size by"
    elif objective is not None and latency_p99_ms is not None and latency_p99_ms > objective:
        replicas, cpu, memory = sizing.replicas + 1, sizing.cpu, sizing.memory_gb
        reason = (
            f"p99 latency {latency_p99_ms:.0f} ms is over its objective of {objective:.0f} ms: "
            "one more replica, requests kept"
        )
    else:
        per_replica = sizing.cpu if sizing.cpu > 0 else max(need_cpu, _CPU_STEP)
        if objective is not None and latency_p99_ms is not None:
            replicas = max(math.ceil(need_cpu / per_replica - 1e-9), floor)
            reason = (
                f"p95 CPU {cpu_p95:.3f} vCPU at {TARGET_UTILISATION:.0%} target utilisation; "
                f"p99 latency {latency_p99_ms:.0f} ms within {objective:.0f} ms"
            )
        else:
            replicas = max(sizing.replicas, floor)
            why = "no latency objective" if objective is None else "no latency observed"
            reason = (
                f"p95 CPU {cpu_p95:.3f} vCPU at {TARGET_UTILISATION:.0%} target utilisation; "
                f"replicas kept ({why})"
            )
        cpu = _ceil_to(need_cpu / replicas, _CPU_STEP)
        memory = _ceil_to(mem_peak * MEMORY_MARGIN, _MEMORY_STEP) if mem_peak else sizing.memory_gb
    card = finops.card_on((now or datetime.now(UTC)).date())
    vcpu_price, mem_price = card.unit_prices(card.serving_instance)
    before = sizing.replicas * (sizing.cpu * vcpu_price + sizing.memory_gb * mem_price)
    after = replicas * (cpu * vcpu_price + memory * mem_price)
    return Recommendation(
        deployment=deployment,
        current=sizing,
        replicas=replicas,
        cpu=cpu,
        memory_gb=memory,
        monthly_saving=(before - after) * HOURS_PER_MONTH,
        hours=hours,
        cpu_p95=cpu_p95,
        memory_peak_gb=mem_peak,
        latency_p99_ms=latency_p99_ms,
        reason=reason,
    )
