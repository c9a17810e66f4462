"""Allocation: usage priced by the rate cards, replicas split into used and idle, shared costs
spread, and every cost counted once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from opsloop.errors import ConfigError
from opsloop.finops import (
    allocate,
    allocated_costs,
    cost_breakdown,
    daily_chart,
    summarise,
    usage_frame,
)
from opsloop.spec.finops import FinopsSection
from opsloop.store import UsageRecord, open_store
from opsloop.store.types import USAGE_DIMENSIONS, USAGE_QUANTITIES

H = datetime(2026, 12, 1, 10, tzinfo=UTC)
CARD = {"vcpu_hour": 0.04, "memory_gb_hour": 0.01, "storage_gb_month": 0.02}


def frame(*rows: tuple[datetime, str, dict[str, str], dict[str, float]]) -> pd.DataFrame:
    """A usage frame as the store gives it, from ``(hour, kind, dims, quantities)``."""
    data = []
    for hour, kind, dims, quantities in rows:
        row: dict[str, object] = {"hour": hour, "kind": kind, "count": 1}
        row.update({d: dims.get(d, "") for d in USAGE_DIMENSIONS})
        row.update({q: float(quantities.get(q, 0.0)) for q in USAGE_QUANTITIES})
        data.append(row)
    out = pd.DataFrame(data)
    out["hour"] = pd.to_datetime(out["hour"], utc=True)
    for name in ("kind", *USAGE_DIMENSIONS):
        out[name] = out[name].astype("category")
    return out


def finops(**extra: object) -> FinopsSection:
    return FinopsSection.model_validate(
        {"rate_cards": [{**CARD, **extra.pop("card", {})}], **extra}
    )  # type: ignore[dict-item]


def test_a_replica_costs_its_reservation_split_into_used_and_idle() -> None:
    usage = frame(
        # 2 vCPU and 4 GB reserved for an hour; 0.5 vCPU-hours used, 1 GB held.
        (
            H,
            "replica",
            {"deployment": "churn"},
            {
                "reserved_cpu_s": 7200,
                "cpu_s": 1800,
                "reserved_memory_gb_s": 4 * 3600,
                "memory_gb_s": 3600,
                "requests": 2_000_000,
            },
        ),
        # A replica with no requests declared costs what it used, with nothing idle.
        (H, "replica", {"deployment": "greedy"}, {"cpu_s": 3600}),
    )
    out = allocate(usage, finops(card={"requests_per_million": 0.5})).set_index("deployment")
    churn, greedy = out.loc["churn"], out.loc["greedy"]
    assert churn["compute_cost"] == pytest.approx(0.5 * 0.04)
    assert churn["idle_compute_cost"] == pytest.approx(1.5 * 0.04)
    assert churn["memory_cost"] == pytest.approx(1 * 0.01)
    assert churn["idle_memory_cost"] == pytest.approx(3 * 0.01)
    assert churn["request_cost"] == pytest.approx(1.0)
    assert churn["cost"] == pytest.approx(2 * 0.04 + 4 * 0.01 + 1.0)
    assert greedy["compute_cost"] == pytest.approx(0.04)
    assert greedy["idle_compute_cost"] == 0


def test_steps_and_storage_cost_what_they_used() -> None:
    usage = frame(
        (H, "step", {"run": "r1", "step": "train"}, {"cpu_s": 1800, "memory_gb_s": 7200}),
        (H, "storage", {"run": "r1"}, {"storage_gb_s": 10 * 730 * 3600}),
    )
    out = allocate(usage, finops())
    assert out["cost"].tolist() == pytest.approx([0.5 * 0.04 + 2 * 0.01, 10 * 0.02])
    assert out["idle_compute_cost"].sum() == 0


@pytest.mark.parametrize("rule", ["proportional", "even"])
def test_shared_costs_are_spread_over_each_hours_consumers(rule: str) -> None:
    usage = frame(
        (H, "step", {"team": "a"}, {"cpu_s": 3600}),  # 0.04
        (H, "step", {"team": "b"}, {"cpu_s": 3 * 3600}),  # 0.12
        (H, "controller", {}, {"cpu_s": 3600}),  # 0.04, shared
        # The next hour has a controller but nobody to charge it to.
        (H + timedelta(hours=1), "controller", {}, {"cpu_s": 3600}),
    )
    spec = finops(shared={"hourly": {"store": 0.2}, "rule": rule})
    out = allocate(usage, spec)
    by_team = summarise(out, "team").set_index("team")["cost"]
    pool = 0.04 + 0.2
    if rule == "proportional":
        assert by_team["a"] == pytest.approx(0.04 + pool / 4)
        assert by_team["b"] == pytest.approx(0.12 + pool * 3 / 4)
    else:
        assert by_team["a"] == pytest.approx(0.04 + pool / 2)
        assert by_team["b"] == pytest.approx(0.12 + pool / 2)
    # The second hour's controller and fixed cost stay unallocated, not lost.
    assert by_team["(none)"] == pytest.approx(0.04 + 0.2)
    # Every cost counted once: the parts of every row add up to its cost.
    assert out["cost"].sum() == pytest.approx(0.04 + 0.12 + 0.04 + 0.04 + 2 * 0.2)
    parts = out[
        [
            "compute_cost",
            "memory_cost",
            "idle_compute_cost",
            "idle_memory_cost",
            "storage_cost",
            "request_cost",
            "shared_cost",
        ]
    ].sum(axis=1)
    assert parts.tolist() == pytest.approx(out["cost"].tolist())


def test_fixed_shared_costs_cover_the_whole_period_asked_for() -> None:
    usage = frame((H, "step", {"team": "a"}, {"cpu_s": 3600}))
    spec = finops(shared={"hourly": {"store": 0.1}})
    out = allocate(usage, spec, since=H - timedelta(hours=2), until=H + timedelta(hours=2))
    assert out["cost"].sum() == pytest.approx(0.04 + 4 * 0.1)


def test_each_hour_is_priced_by_the_card_valid_then() -> None:
    spec = FinopsSection.model_validate(
        {
            "currency": "EUR",
            "rate_cards": [
                {"name": "old", "valid_to": "2026-12-02", "vcpu_hour": 1.0},
                {"name": "new", "valid_from": "2026-12-02", "vcpu_hour": 2.0},
            ],
        }
    )
    usage = frame(
        (H, "step", {}, {"cpu_s": 3600}),
        (H + timedelta(days=1), "step", {}, {"cpu_s": 3600}),
    )
    out = allocate(usage, spec)
    assert out["cost"].tolist() == [1.0, 2.0]
    assert out["rate_card"].astype(str).tolist() == ["old", "new"]
    only_new = FinopsSection.model_validate(
        {"rate_cards": [{"name": "new", "valid_from": date(2026, 12, 2), "vcpu_hour": 2.0}]}
    )
    with pytest.raises(ConfigError, match=r"no rate card .* is valid on 2026-12-01T10:00"):
        allocate(usage, only_new)


def test_an_instance_type_prices_by_its_share_of_cpu_and_memory() -> None:
    spec = finops(
        card={
            "instance_types": {"m.large": {"vcpu": 2, "memory_gb": 8, "hourly": 0.16}},
            "serving_instance": "m.large",
        }
    )
    usage = frame(
        (
            H,
            "replica",
            {"deployment": "d"},
            {"reserved_cpu_s": 7200, "reserved_memory_gb_s": 8 * 3600},
        ),
        (H, "step", {"step": "s"}, {"cpu_s": 3600}),
    )
    out = allocate(usage, spec).set_index("kind")
    # A replica reserving the whole machine for an hour costs the machine-hour.
    assert out.loc["replica", "cost"] == pytest.approx(0.16)
    # Steps keep the card's own vCPU price.
    assert out.loc["step", "cost"] == pytest.approx(0.04)


def test_costs_by_model_version_include_training_and_serving(
    tmp_path: Path, store_url: str
) -> None:
    store = open_store(store_url)
    run = store.runs.create("lifecycle", kind="pipeline")
    store.models.create_version("churn", artifact_digest="sha256:" + "1" * 64, run_id=run.id)
    store.usage.add(
        [
            UsageRecord(H, "step", {"run": run.id, "step": "train", "team": "a"}, {"cpu_s": 3600}),
            UsageRecord(
                H,
                "replica",
                {"deployment": "churn", "model": "churn", "version": "1", "team": "a"},
                {"cpu_s": 3600, "requests": 4000},
            ),
        ]
    )
    out = allocated_costs(store, finops())
    by_version = summarise(out, "version").set_index("version")
    assert by_version.loc["churn:1", "cost"] == pytest.approx(0.08)
    by_deployment = summarise(out, "deployment").set_index("deployment")
    assert by_deployment.loc["churn", "cost_per_1000_requests"] == pytest.approx(0.01)
    assert summarise(out, "day")["day"].tolist() == ["2026-12-01"]
    assert usage_frame(store, since=H + timedelta(hours=1)).empty
    chart = daily_chart(out, "team", tmp_path / "costs.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="cannot group costs by 'colour'"):
        summarise(out, "colour")
    store.close()


def test_no_usage_costs_nothing() -> None:
    empty = frame((H, "step", {}, {})).iloc[0:0]
    out = allocate(empty, finops())
    assert out.empty
    assert summarise(out, "team").empty


def test_a_breakdown_names_the_runs_asked_for() -> None:
    usage = frame(
        (H, "step", {"run": "r1", "step": "train"}, {"cpu_s": 3600}),
        (H, "step", {"run": "r2", "step": "train"}, {"cpu_s": 7200}),
        (H, "step", {"run": "r3", "step": "train"}, {"cpu_s": 3600}),
        (H, "replica", {"deployment": "d"}, {"reserved_cpu_s": 3600}),
        (H + timedelta(hours=1), "controller", {}, {"cpu_s": 3600}),
    )
    lines = cost_breakdown(allocate(usage, finops()), {"r1": "training", "r2": "retrain"})
    assert lines == [
        ("training", pytest.approx(0.04)),
        ("retrain", pytest.approx(0.08)),
        ("other runs", pytest.approx(0.04)),
        ("serving", pytest.approx(0.04)),
        ("the loop itself", pytest.approx(0.04)),  # an hour with no consumer to charge
    ]
