"""The finops: section of opsloop.yaml: what it accepts and how it says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from opsloop.errors import SpecError
from opsloop.spec import load_spec
from opsloop.spec.finops import DEFAULT_RATE_CARD, FinopsSection


def test_a_project_without_the_section_is_priced_by_the_example_card(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: demo\n")
    spec = load_spec(tmp_path / "opsloop.yaml")
    assert spec.finops.rate_cards == [DEFAULT_RATE_CARD]
    assert spec.finops.currency == "USD"


def test_a_full_section_loads(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text(
        """\
project: demo
finops:
  currency: EUR
  team: growth
  cost_centre: cc-7
  environment: prod
  rate_cards:
    - name: h1
      valid_to: 2026-07-01
      vcpu_hour: 0.03
      memory_gb_hour: 0.004
      storage_gb_month: 0.02
      requests_per_million: 0.2
      instance_types: {m.large: {vcpu: 2, memory_gb: 8, hourly: 0.1}}
      serving_instance: m.large
    - {name: h2, valid_from: 2026-07-01, vcpu_hour: 0.035}
  shared: {hourly: {store: 0.05}, rule: even}
"""
    )
    finops = load_spec(tmp_path / "opsloop.yaml").finops
    assert [c.name for c in finops.rate_cards] == ["h1", "h2"]
    assert finops.rate_cards[0].instance_types["m.large"].hourly == 0.1
    assert finops.shared.rule == "even"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"currency": "dollars"}, "not an ISO 4217 currency code"),
        ({"rate_cards": [{"vcpu_hour": -1}]}, "greater than or equal to 0"),
        ({"rate_cards": []}, "at least 1 item"),
        (
            {"rate_cards": [{"name": "a"}, {"name": "b", "valid_from": "2026-01-01"}]},
            "rate cards 'a' and 'b' are both valid on 2026-01-01",
        ),
        (
            {"rate_cards": [{"valid_from": "2026-02-01", "valid_to": "2026-01-01"}]},
            "valid_to 2026-01-01 is not after valid_from 2026-02-01",
        ),
        (
            {"rate_cards": [{"serving_instance": "big"}]},
            "serving_instance 'big' is not one of its instance_types",
        ),
        ({"shared": {"hourly": {"store": -2}}}, "shared cost 'store' is negative"),
        ({"shared": {"rule": "random"}}, "'even' or 'proportional'"),
        ({"budget": 10}, "Extra inputs are not permitted"),
    ],
)
def test_bad_sections_say_what_is_wrong(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FinopsSection.model_validate(section)


def test_the_loader_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: demo\nfinops:\n  currency: euros\n")
    with pytest.raises(SpecError, match=r"opsloop\.yaml:3: field 'finops\.currency'"):
        load_spec(tmp_path / "opsloop.yaml")
