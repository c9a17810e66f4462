"""Data SLAs of a source, judged from its loads: freshness and volume.

* freshness: the newest load that brought new rows is at most ``freshness`` old;
* volume: the rows that arrived in the last ``volume_period`` are within ``volume`` (a
  fraction) of the median of the ``volume_days`` periods before it. Periods without any load
  are left out of the median (nothing was looked at then), and the check waits until at least
  one earlier period was looked at.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from opsloop.spec.sources import DataSla
    from opsloop.store import SourceLoadInfo

__all__ = ["SlaResult", "check_sla"]


class SlaResult(BaseModel):
    """One SLA judged.

    Attributes:
        sla: ``freshness`` or ``volume``.
        source: The source's name.
        ok: Whether it holds.
        value: What was measured (hours since new rows; rows in the period).
        expected: The limit (hours), or the median the rows are compared with.
        message: One line for people.
    """

    model_config = ConfigDict(frozen=True)

    sla: str
    source: str
    ok: bool
    value: float
    expected: float
    message: str


def check_sla(
    source: str, sla: DataSla, loads: Sequence[SourceLoadInfo], now: datetime
) -> list[SlaResult]:
    """Judge the SLAs of ``source`` from its loads (oldest first) at ``now``.

    Returns one result per SLA that can be judged (none before the first load).
    """
    out: list[SlaResult] = []
    if not loads:
        return out
    if sla.freshness is not None:
        fresh = [ld for ld in loads if ld.new_rows > 0]
        since = fresh[-1].loaded_at if fresh else loads[0].loaded_at
        age = now - since
        hours = age.total_seconds() / 3600
        limit = sla.freshness.total_seconds() / 3600
        ok = age <= sla.freshness
        out.append(
            SlaResult(
                sla="freshness",
                source=source,
                ok=ok,
                value=round(hours, 3),
                expected=limit,
                message=(
                    f"{source}: newest rows arrived {hours:.1f} h ago"
                    + ("" if ok else f", beyond the {limit:g} h freshness SLA")
                ),
            )
        )
    if sla.volume is not None:
        result = _volume(source, sla, loads, now)
        if result is not None:
            out.append(result)
    return out


def _volume(
    source: str, sla: DataSla, loads: Sequence[SourceLoadInfo], now: datetime
) -> SlaResult | None:
    assert sla.volume is not None
    period = sla.volume_period
    counts: dict[int, int] = {}
    for ld in loads:
        index = int((now - ld.loaded_at) / period)
        if 0 <= index <= sla.volume_days:
            counts[index] = counts.get(index, 0) + ld.new_rows
    earlier = [counts[i] for i in range(1, sla.volume_days + 1) if i in counts]
    if not earlier or 0 not in counts:
        return None
    median = float(statistics.median(earlier))
    current = counts[0]
    low, high = median * (1 - sla.volume), median * (1 + sla.volume)
    ok = low <= current <= high
    days = sla.volume_days
    return SlaResult(
        sla="volume",
        source=source,
        ok=ok,
        value=float(current),
        expected=median,
        message=(
            f"{source}: {current:,} new rows in the last period, median of the {days} before "
            f"{median:,.0f}" + ("" if ok else f": outside ±{sla.volume:.0%}")
        ),
    )
