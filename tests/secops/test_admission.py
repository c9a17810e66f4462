"""The admission decision, from a version's recorded details and the policy alone."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsloop.secops import AdmissionDecision, admit
from opsloop.spec.schema import SecuritySection

CLEAN = {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}


def details(
    *,
    signed: bool = True,
    status: str | None = "passed",
    findings: dict[str, int] | None = None,
    gates: list[dict[str, Any]] | None = None,
    gates_passed: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if signed:
        out["signature"] = {"format": "openssf-model-signing", "bundle_digest": "sha256:ab"}
    if status is not None:
        out["scan"] = {"status": status, "findings": {**CLEAN, **(findings or {})}}
    if gates is not None:
        out["gates"] = gates
    if gates_passed is not None:
        out["gates_passed"] = gates_passed
    return out


DEFAULT = SecuritySection()


def test_the_defaults_are_the_secure_ones() -> None:
    assert DEFAULT.require_signature is True
    assert DEFAULT.require_scan == "passed"
    assert DEFAULT.require_gates is True
    assert DEFAULT.max_severity == "medium"


def test_a_signed_scanned_version_that_passed_its_gates_is_admitted() -> None:
    gates = [{"name": "auc", "passed": True}]
    decision = admit(details(gates=gates, gates_passed=True), DEFAULT)
    assert decision == AdmissionDecision(allowed=True, reasons=())
    assert decision and decision.message == ""


def test_a_version_without_gates_is_admitted() -> None:
    assert admit(details(), DEFAULT).allowed


def test_every_reason_is_named() -> None:
    bad = details(
        signed=False,
        status="failed",
        findings={"critical": 1, "high": 2},
        gates=[{"name": "auc", "passed": False}, {"name": "latency", "passed": True}],
        gates_passed=False,
    )
    decision = admit(bad, DEFAULT)
    assert not decision.allowed
    assert decision.reasons == (
        "it is not signed (no signature is recorded)",
        "its model scan failed",
        "its scan found 1 critical, 2 high (the policy allows up to medium)",
        "it failed its gates: auc",
    )
    assert decision.message == "; ".join(decision.reasons)


@pytest.mark.parametrize("record", [{}, {"scan": None}, {"scan": {"status": "running"}}])
def test_a_version_never_scanned_is_refused(record: dict[str, Any]) -> None:
    decision = admit({**details(status=None), **record}, DEFAULT)
    assert decision.reasons == ("it was never scanned",)
    assert admit({**details(status=None), **record}, SecuritySection(require_scan="any"))


def test_max_severity_is_the_worst_finding_allowed() -> None:
    medium = details(findings={"medium": 3, "low": 1})
    assert admit(medium, DEFAULT).allowed
    assert admit(medium, SecuritySection(max_severity="low")).reasons == (
        "its scan found 3 medium (the policy allows up to low)",
    )
    assert admit(medium, SecuritySection(max_severity="info")).reasons == (
        "its scan found 3 medium, 1 low (the policy allows up to info)",
    )
    worst = details(findings={"critical": 1})
    assert not admit(worst, SecuritySection(require_scan="any", max_severity="high"))
    assert admit(worst, SecuritySection(require_scan="any", max_severity="critical"))


def test_the_signature_record_needs_a_bundle() -> None:
    for record in (None, {}, {"bundle_digest": ""}, "sha256:ab"):
        assert not admit({**details(), "signature": record}, DEFAULT)
    assert admit(details(signed=False), SecuritySection(require_signature=False))


def test_failed_gates_count_unless_turned_off_or_not_asked_for() -> None:
    failed = details(gates=[{"name": "auc", "passed": False}], gates_passed=False)
    assert not admit(failed, DEFAULT)
    assert admit(failed, SecuritySection(require_gates=False))
    assert admit(failed, DEFAULT, gates=False)
    # gates_passed alone (no gate list) still counts.
    assert admit(details(gates_passed=False), DEFAULT).reasons == ("it failed its gates",)


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValidationError, match="max_severity"):
        SecuritySection.model_validate({"max_severity": "severe"})
    with pytest.raises(ValidationError, match="require_scan"):
        SecuritySection.model_validate({"require_scan": "failed"})
