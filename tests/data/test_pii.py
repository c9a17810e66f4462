"""Personal data at ingest: declared (pii: true) and detected columns in the contract report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from opsloop.data import check_contract, parse_contract
from opsloop.data.pii import detect_pii, luhn_ok, pii_kind
from opsloop.secops.keys import pii_salt


def test_the_detector_knows_emails_phones_and_luhn_checked_cards() -> None:
    assert pii_kind("ana.b+x@example.co.uk") == "email"
    assert pii_kind("+44 20 7946 0958") == "phone"
    assert pii_kind("(555) 123-4567") == "phone"
    assert pii_kind("4111 1111 1111 1111") == "card"
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    # 16 digits failing the Luhn check are no card (nor a phone: too many digits).
    assert pii_kind("4111 1111 1111 1112") is None
    for value in ("paris", "2024-05-01", "12", "not an @ address", 4111111111111111, None):
        assert pii_kind(value) is None


def test_detect_pii_flags_columns_by_majority_and_lists_declared_ones_first() -> None:
    df = pd.DataFrame(
        {
            "contact": ["a@x.io", "b@y.io", None, "unknown"],
            "card": ["4111111111111111", "5500 0000 0000 0004", "", "x"],
            "city": ["paris", "nice", "lyon", "caen"],
            "age": [1, 2, 3, 4],
            "name": ["Ana", "Bo", "Cy", "Di"],
        }
    )
    found = detect_pii(df, declared=["name", "not_a_column"])
    assert [(f.column, f.kind) for f in found] == [
        ("name", "declared"),
        ("contact", "email"),
        ("card", "card"),
    ]
    assert found[1].share == round(2 / 3, 4)


def test_the_contract_report_lists_pii_and_warns_about_undeclared_pii() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@y.io"], "name": ["Ana", "Bo"], "y": [0, 1]})
    contract = parse_contract({"columns": {"name": {"pii": True}, "y": {"dtype": "int"}}})
    report = check_contract(df, contract)
    assert report.passed
    assert [(p.column, p.kind) for p in report.pii] == [("name", "declared"), ("email", "email")]
    [warning] = report.warnings
    assert (warning.column, warning.rule) == ("email", "pii")
    assert "not tagged pii: true" in warning.message
    # Declared: no warning, still listed.
    tagged = parse_contract({"columns": {"name": {"pii": True}, "email": {"pii": True}}})
    report = check_contract(df, tagged)
    assert report.warnings == []
    assert {p.column for p in report.pii} == {"name", "email"}
    dumped = report.model_dump(mode="json")
    assert dumped["pii"][0] == {"column": "name", "kind": "declared", "share": 1.0}


def test_the_pii_salt_is_made_once_per_project_outside_the_repo(tmp_path: Path) -> None:
    salt = pii_salt("churn", tmp_path)
    assert len(salt) == 32
    assert pii_salt("churn", tmp_path) == salt
    assert pii_salt("other", tmp_path) != salt
    [path] = tmp_path.glob("keys/churn/pii.salt")
    assert path.stat().st_mode & 0o777 == 0o600
