"""The server learns the PII columns and the log policy from the project's opsloop.yaml."""

from __future__ import annotations

from opsloop.loop.privacy import prediction_log_privacy
from opsloop.secops.keys import pii_salt
from opsloop.serve.config import ServerConfig
from opsloop.spec import parse_spec

BASE = "project: privacy\ncontract:\n  columns:\n    email: {pii: true}\n    age: {dtype: int}\n"


def test_tagged_columns_are_hashed_with_the_project_salt_by_default() -> None:
    options = prediction_log_privacy(parse_spec(BASE))
    assert options["pii_columns"] == ["email"]
    assert options["pii_policy"] == "hash"
    assert options["pii_salt"] == pii_salt("privacy").hex()
    assert ServerConfig(**options).pii_columns == ["email"]


def test_the_declared_policy_is_used_and_no_project_means_no_options() -> None:
    text = BASE + "monitoring:\n  prediction_log: {pii: drop}\n"
    options = prediction_log_privacy(parse_spec(text))
    assert options == {"pii_columns": ["email"], "pii_policy": "drop"}
    assert prediction_log_privacy(None) == {}
    assert prediction_log_privacy(parse_spec("project: p\n"))["pii_columns"] == []
