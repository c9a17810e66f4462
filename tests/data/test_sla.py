"""Data SLAs judged from a source's loads: freshness and volume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsloop.data.sla import check_sla
from opsloop.spec.sources import DataSla
from opsloop.store import SourceLoadInfo

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def _load(ago: timedelta, new_rows: int, i: int = 0) -> SourceLoadInfo:
    return SourceLoadInfo(
        id=i,
        source="s",
        loaded_at=NOW - ago,
        digest="d",
        artifact="a",
        rows=0,
        new_rows=new_rows,
        watermark=None,
        details={},
    )


def _daily(counts: list[int]) -> list[SourceLoadInfo]:
    """One load per day, oldest first; the last is today's."""
    n = len(counts)
    return [_load(timedelta(days=n - 1 - i, hours=1), c, i) for i, c in enumerate(counts)]


def test_freshness() -> None:
    sla = DataSla.model_validate({"freshness": "24h"})
    fresh = check_sla("s", sla, [_load(timedelta(hours=30), 5), _load(timedelta(hours=2), 1)], NOW)
    assert [(r.sla, r.ok) for r in fresh] == [("freshness", True)]
    stale = check_sla("s", sla, [_load(timedelta(hours=30), 5), _load(timedelta(hours=1), 0)], NOW)
    assert not stale[0].ok
    assert stale[0].value == 30.0
    assert "beyond the 24 h freshness SLA" in stale[0].message
    assert check_sla("s", sla, [], NOW) == []


def test_volume_within_and_outside_the_band() -> None:
    sla = DataSla.model_validate({"volume": 0.3})
    week = [100, 90, 110, 100, 105, 95, 100]
    ok = check_sla("s", sla, _daily([*week, 125]), NOW)
    assert [(r.sla, r.ok, r.expected) for r in ok] == [("volume", True, 100.0)]
    high = check_sla("s", sla, _daily([*week, 131]), NOW)
    assert not high[0].ok and "outside ±30%" in high[0].message
    low = check_sla("s", sla, _daily([*week, 69]), NOW)
    assert not low[0].ok
    # Nothing to compare with yet: no judgement.
    assert check_sla("s", sla, _daily([50]), NOW) == []
