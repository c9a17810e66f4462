"""Budgets in opsloop.yaml, their month and forecast, the hourly cost series, and what an
incident's remediation cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from opsloop.finops import (
    allocate,
    budget_statuses,
    daily_series,
    hourly_cost_points,
    incident_cost,
    month_bounds,
)
from opsloop.spec.finops import FinopsSection
from opsloop.store.types import ActionInfo

from .test_allocate import frame

H = datetime(2026, 12, 10, 10, tzinfo=UTC)
CARD = {"vcpu_hour": 1.0}


def section(**extra: object) -> FinopsSection:
    return FinopsSection.model_validate({"rate_cards": [CARD], **extra})


def test_a_budget_covers_one_scope_with_fractions_as_thresholds() -> None:
    budget = section(budgets=[{"team": "ml", "monthly": 100, "actual": [1.0, 0.5]}]).budgets[0]
    assert budget.name == "team-ml" and budget.scope == ("team", "ml")
    assert budget.actual == [0.5, 1.0]
    with pytest.raises(ValidationError, match="exactly one of team, model or deployment"):
        section(budgets=[{"team": "ml", "model": "churn", "monthly": 1}])
    with pytest.raises(ValidationError, match="exactly one of"):
        section(budgets=[{"monthly": 1}])
    with pytest.raises(ValidationError, match="greater than 0"):
        section(budgets=[{"team": "ml", "monthly": 0}])
    with pytest.raises(ValidationError, match=r"threshold 80\.0 is not a fraction"):
        section(budgets=[{"team": "ml", "monthly": 1, "actual": [80]}])
    with pytest.raises(ValidationError, match="budget name 'x' is used twice"):
        section(
            budgets=[
                {"name": "x", "team": "a", "monthly": 1},
                {"name": "x", "team": "b", "monthly": 1},
            ]
        )


def test_month_bounds_cross_the_year() -> None:
    assert month_bounds(datetime(2026, 12, 31, 23, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_spend_and_forecast_count_only_the_scope_and_the_month() -> None:
    usage = frame(
        # Last month: not this month's spend, but part of the 7-day run rate.
        (datetime(2026, 11, 30, 10, tzinfo=UTC), "step", {"team": "ml"}, {"cpu_s": 3600}),
        (H, "step", {"team": "ml"}, {"cpu_s": 7200}),
        (H, "step", {"team": "other"}, {"cpu_s": 36000}),
    )
    allocated = allocate(usage, section())
    now = H + timedelta(hours=1)
    (status,) = budget_statuses(
        allocated, section(budgets=[{"team": "ml", "monthly": 10}]).budgets, now
    )
    assert status.month == "2026-12" and status.actual == pytest.approx(2.0)
    # Only the December hour is within the 7 days; its cost over at least one day.
    hours_left = (datetime(2027, 1, 1, tzinfo=UTC) - now).total_seconds() / 3600
    assert status.forecast == pytest.approx(2.0 + 2.0 / 24 * hours_left)
    assert status.actual_reached == [] and status.forecast_reached == [1.0]
    assert status.to_json()["team"] == "ml"
    assert daily_series(allocated).tolist()[-1] == pytest.approx(12.0)


def test_hourly_cost_series_start_at_their_first_cost_and_fill_quiet_hours() -> None:
    usage = frame(
        (H, "step", {"model": "churn", "run": "r"}, {"cpu_s": 3600}),
        (H + timedelta(hours=2), "replica", {"deployment": "prod"}, {"reserved_cpu_s": 1800}),
    )
    allocated = allocate(usage, section())
    points = hourly_cost_points(
        allocated, H - timedelta(hours=5), H + timedelta(hours=3, minutes=5)
    )
    training = [(p[2], p[3]) for p in points if p[0] == "cost.training"]
    assert training == [(H, 1.0), (H + timedelta(hours=1), 0.0), (H + timedelta(hours=2), 0.0)]
    serving = [p for p in points if p[0] == "cost.serving"]
    assert [(p[1], p[3]) for p in serving] == [({"deployment": "prod"}, 0.5)]
    # A series written before gets its quiet hours too.
    known = hourly_cost_points(
        allocated, H - timedelta(hours=1), H, known={("cost.training", "churn")}
    )
    assert [(p[0], p[3]) for p in known] == [("cost.training", 0.0)]


def _action(
    action: str,
    result: dict[str, object],
    started_at: datetime = H,
    finished_at: datetime = H,
) -> ActionInfo:
    return ActionInfo(
        id=1,
        incident_id=1,
        action=action,
        status="succeeded",
        policy="p",
        created_at=H,
        started_at=started_at,
        finished_at=finished_at,
        approved_by=None,
        params={"deployment": "prod"},
        result=result,
        error=None,
    )


def test_what_the_remediation_cost() -> None:
    usage = frame(
        (H, "step", {"run": "retrain-1"}, {"cpu_s": 1800}),
        (H, "replica", {"deployment": "prod"}, {"reserved_cpu_s": 7200}),
    )
    allocated = allocate(usage, section())
    actions = [
        _action("retrain", {"run_id": "retrain-1", "version": 2}),
        # 30 minutes of the hour at 10 % of the traffic of 2 vCPU-hours.
        _action(
            "canary",
            {"version": 2, "weight": 10.0},
            started_at=H + timedelta(minutes=15),
            finished_at=H + timedelta(minutes=45),
        ),
        _action("notify", {}),
    ]
    costs = incident_cost(allocated, actions)
    assert [what for what, _cost in costs] == ["retrain (run retrain-1)", "canary of v2 on prod"]
    assert [cost for _what, cost in costs] == pytest.approx([0.5, 2.0 * 0.5 * 0.1])
