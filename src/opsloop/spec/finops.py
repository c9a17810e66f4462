"""The ``finops:`` section of ``opsloop.yaml``: currency, rate cards, tags, shared costs,
budgets and cost anomalies.

A rate card prices metered usage: vCPU-hours, GB-hours of memory, GB-months of storage and
millions of requests, or named instance types with an hourly price for their CPU and memory.
Prices change, so a project may list several cards with the dates they are valid for; each
hour of usage is priced by the card valid then. GB means GiB (2**30 bytes) throughout.

Without a ``finops:`` section the project is priced by :data:`DEFAULT_RATE_CARD`, an example
of the order of magnitude of on-demand cloud prices, not a quote of any provider: declare
your own prices to see your own costs.
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUDGET_SCOPES",
    "DEFAULT_RATE_CARD",
    "Budget",
    "CostAnomalies",
    "FinopsSection",
    "InstanceType",
    "RateCard",
    "SharedCosts",
]

_CURRENCY = re.compile(r"^[A-Z]{3}\Z")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InstanceType(_Section):
    """A machine type with an hourly price for its CPU and memory together.

    Attributes:
        vcpu: vCPUs of the machine.
        memory_gb: Memory of the machine, in GB.
        hourly: Price of one machine-hour.
    """

    vcpu: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    hourly: float = Field(ge=0)


class RateCard(_Section):
    """Prices of one period.

    Attributes:
        name: What the card is called in reports.
        valid_from: First day the card prices (inclusive; unset: since always).
        valid_to: Day the card stops pricing (exclusive; unset: for ever).
        vcpu_hour: Price of one vCPU for one hour.
        memory_gb_hour: Price of one GB of memory for one hour.
        storage_gb_month: Price of one GB stored for a month (730 hours).
        requests_per_million: Price of one million requests served.
        instance_types: Named machine types with their hourly prices.
        training_instance: Price pipeline steps and tuning trials by this instance type's
            per-vCPU and per-GB prices instead of ``vcpu_hour`` and ``memory_gb_hour``.
        serving_instance: The same for model server replicas.
    """

    name: str = Field(default="default", min_length=1, max_length=64)
    valid_from: date | None = None
    valid_to: date | None = None
    vcpu_hour: float = Field(default=0.0, ge=0)
    memory_gb_hour: float = Field(default=0.0, ge=0)
    storage_gb_month: float = Field(default=0.0, ge=0)
    requests_per_million: float = Field(default=0.0, ge=0)
    instance_types: dict[str, InstanceType] = Field(default_factory=dict)
    training_instance: str | None = None
    serving_instance: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RateCard:
        if (
            self.valid_from is not None
            and self.valid_to is not None
            and self.valid_to <= self.valid_from
        ):
            raise ValueError(
                f"rate card '{self.name}': valid_to {self.valid_to} is not after "
                f"valid_from {self.valid_from}"
            )
        for use in ("training_instance", "serving_instance"):
            chosen = getattr(self, use)
            if chosen is not None and chosen not in self.instance_types:
                known = ", ".join(sorted(self.instance_types)) or "none"
                raise ValueError(
                    f"rate card '{self.name}': {use} '{chosen}' is not one of its "
                    f"instance_types ({known})"
                )
        return self

    def unit_prices(self, instance: str | None = None) -> tuple[float, float]:
        """Per vCPU-hour and per GB-hour: the card's own, or split from an instance type's
        hourly price in the ratio of the card's own CPU and memory prices (evenly per unit
        when the card gives none)."""
        if instance is None:
            return self.vcpu_hour, self.memory_gb_hour
        machine = self.instance_types[instance]
        cpu_weight, mem_weight = self.vcpu_hour, self.memory_gb_hour
        if cpu_weight + mem_weight == 0:
            cpu_weight = mem_weight = 1.0
        scale = machine.hourly / (machine.vcpu * cpu_weight + machine.memory_gb * mem_weight)
        return cpu_weight * scale, mem_weight * scale


DEFAULT_RATE_CARD = RateCard(
    name="example",
    vcpu_hour=0.04,
    memory_gb_hour=0.005,
    storage_gb_month=0.023,
    requests_per_million=0.20,
)
"""The card a project without ``finops.rate_cards`` is priced by: an example of the order of
magnitude of on-demand cloud prices in USD, not a quote of any provider."""


class SharedCosts(_Section):
    """Costs no single consumer causes, and how they are spread.

    The controller's and the monitors' own metered usage is shared, as are the fixed hourly
    costs listed here (the metadata store's database, a dashboard …).

    Attributes:
        hourly: Fixed costs per hour, by name (e.g. ``{store: 0.05}``).
        rule: ``proportional``: each consumer of an hour gets a share in proportion to its
            own cost in that hour; ``even``: every consumer of the hour gets the same share.
    """

    hourly: dict[str, float] = Field(default_factory=dict)
    rule: Literal["even", "proportional"] = "proportional"

    @field_validator("hourly")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, price in value.items():
            if price < 0:
                raise ValueError(f"shared cost '{name}' is negative ({price})")
        return value


BUDGET_SCOPES = ("team", "model", "deployment")
"""What a budget may cover: one team's, one registered model's or one deployment's costs."""


class Budget(_Section):
    """A monthly budget of one team, model or deployment, and when to alert on it.

    Alerts fire when the month's actual spend, or its month-end forecast (the spend so far
    plus the recent run rate over the rest of the month), reaches a threshold: a fraction of
    ``monthly`` (``0.8`` is 80 %).

    Attributes:
        name: What alerts and reports call it (default: ``<scope>-<value>``).
        team: The team whose costs it covers.
        model: The registered model whose costs it covers (its training and its share of
            serving).
        deployment: The deployment whose costs it covers.
        monthly: The budget of one calendar month (UTC), in ``finops.currency``.
        actual: Thresholds of the actual spend.
        forecast: Thresholds of the month-end forecast.
        severity: Severity of its alerts (a threshold at or over 1 is ``critical``).
    """

    name: str = Field(default="", max_length=128)
    team: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    deployment: str | None = Field(default=None, min_length=1, max_length=128)
    monthly: float = Field(gt=0)
    actual: list[float] = Field(default_factory=lambda: [0.8, 1.0])
    forecast: list[float] = Field(default_factory=lambda: [1.0])
    severity: Literal["info", "warning", "critical"] = "warning"

    @field_validator("actual", "forecast")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for at in value:
            if not 0 < at <= 10:
                raise ValueError(f"threshold {at} is not a fraction of the budget in (0, 10]")
        if len(set(value)) != len(value):
            raise ValueError("a threshold is listed twice")
        return sorted(value)

    @model_validator(mode="after")
    def _one_scope(self) -> Budget:
        given = [s for s in BUDGET_SCOPES if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError(
                "a budget covers exactly one of team, model or deployment "
                f"(this one gives {', '.join(given) or 'none'})"
            )
        if not self.name:
            object.__setattr__(self, "name", f"{given[0]}-{getattr(self, given[0])}")
        return self

    @property
    def scope(self) -> tuple[str, str]:
        """``(dimension, value)``: what the budget covers (``("team", "ml")``)."""
        for dim in BUDGET_SCOPES:
            value = getattr(self, dim)
            if value is not None:
                return dim, str(value)
        raise AssertionError("validated: a budget has a scope")  # pragma: no cover


class CostAnomalies(_Section):
    """Cost anomalies: the AIOps streaming detector run on the hourly cost series.

    The loop writes each complete hour's cost as series points (``cost.training`` by model,
    ``cost.serving`` by deployment) and scores them like any other series.

    Attributes:
        enabled: Look for cost anomalies at all.
        threshold: Detector score in (0, 1] from which an hour is anomalous (default: the
            default detector's own, the corpus-wide threshold its NAB benchmark chose).
        min_cost: Hours that cost less than this are never anomalous (a rise from nothing
            to very little is not worth an incident).
    """

    enabled: bool = True
    threshold: float | None = Field(default=None, gt=0, le=1)
    min_cost: float = Field(default=0.0, ge=0)


class FinopsSection(_Section):
    """What a project's usage costs, and whom it is charged to.

    Attributes:
        currency: ISO 4217 code of every price (e.g. ``USD``, ``EUR``).
        team: The team the project's runs are charged to (a deployment's ``team`` label
            overrides it for that deployment).
        cost_centre: The cost centre (a deployment's ``cost-centre`` label overrides it).
        environment: The environment of the project's deployments (a deployment's
            ``environment`` label overrides it).
        rate_cards: The prices, one card per period; periods must not overlap.
        shared: Shared costs and their spreading rule.
        budgets: Monthly budgets of teams, models and deployments, with alert thresholds.
        anomalies: How cost anomalies are found.
        evaluate_every_s: Seconds between two evaluations of budgets and anomalies by the
            loop (each prices the month's usage); 0: never.
    """

    currency: str = "USD"
    team: str = Field(default="", max_length=128)
    cost_centre: str = Field(default="", max_length=128)
    environment: str = Field(default="", max_length=64)
    rate_cards: list[RateCard] = Field(default_factory=lambda: [DEFAULT_RATE_CARD], min_length=1)
    shared: SharedCosts = Field(default_factory=SharedCosts)
    budgets: list[Budget] = Field(default_factory=list)
    anomalies: CostAnomalies = Field(default_factory=CostAnomalies)
    evaluate_every_s: float = Field(default=300.0, ge=0)

    def card_on(self, day: date) -> RateCard:
        """The rate card valid on ``day`` (the last card when none is)."""
        for card in self.rate_cards:
            if (card.valid_from is None or card.valid_from <= day) and (
                card.valid_to is None or day < card.valid_to
            ):
                return card
        return self.rate_cards[-1]

    @field_validator("budgets")
    @classmethod
    def _unique_budgets(cls, budgets: list[Budget]) -> list[Budget]:
        names = [b.name for b in budgets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"budget name '{twice[0]}' is used twice: give each its own name")
        return budgets

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. 'USD')")
        return value

    @field_validator("rate_cards")
    @classmethod
    def _no_overlap(cls, cards: list[RateCard]) -> list[RateCard]:
        spans = sorted((c.valid_from or date.min, c.valid_to or date.max, c.name) for c in cards)
        for (_s1, end1, name1), (start2, _e2, name2) in itertools.pairwise(spans):
            if start2 < end1:
                raise ValueError(
                    f"rate cards '{name1}' and '{name2}' are both valid on {start2}: "
                    "give each card its own period (valid_from / valid_to)"
                )
        return cards
