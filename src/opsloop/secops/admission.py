"""Admission: whether a model version may be promoted, deployed or served.

:func:`admit` reads what a version records about itself (its ``details``: the ``signature``
record, the ``scan`` summary, the lifecycle's ``gates`` and ``gates_passed``) and decides by
the ``security`` policy of ``opsloop.yaml``::

    security:
      require_signature: true   # a signature is recorded (and verified where the files are)
      require_scan: passed      # passed | any: a failed or missing scan is refused
      require_gates: true       # a version recording a failed gate is refused
      max_severity: medium      # the worst scan finding allowed

It checks records only: the signature itself is verified against the files where they are
fetched (on load and before a deployment starts). A version registered without gates (through
the Python API) records none, and ``require_gates`` does not hold it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.secops.scan import SEVERITIES, scan_status, severity_at_least

if TYPE_CHECKING:
    from opsloop.spec.schema import SecuritySection

__all__ = ["AdmissionDecision", "admit"]


@dataclass(frozen=True)
class AdmissionDecision:
    """The verdict on one version.

    Attributes:
        allowed: Whether the version is admitted.
        reasons: Why not, one sentence each (empty when admitted).
    """

    allowed: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def message(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


def admit(
    details: Mapping[str, Any] | None, policy: SecuritySection, *, gates: bool = True
) -> AdmissionDecision:
    """Decide whether a version with these recorded ``details`` is admitted by ``policy``.

    Args:
        details: The version's ``details`` as the registry records them.
        policy: The ``security`` section of ``opsloop.yaml``.
        gates: Whether the gates count (false for the alias that marks versions whose gates
            failed, such as ``challenger``).

    Returns:
        The decision, with every reason the version is refused.
    """
    details = details or {}
    reasons: list[str] = []
    if policy.require_signature and not _signed(details):
        reasons.append("it is not signed (no signature is recorded)")
    status = scan_status(details)
    if policy.require_scan == "passed" and status != "passed":
        reasons.append("its model scan failed" if status == "failed" else "it was never scanned")
    worse = _findings_above(details, policy.max_severity)
    if worse:
        counts = ", ".join(f"{n} {severity}" for severity, n in worse)
        reasons.append(f"its scan found {counts} (the policy allows up to {policy.max_severity})")
    if gates and policy.require_gates:
        failed = _failed_gates(details)
        if failed is not None:
            named = f": {', '.join(failed)}" if failed else ""
            reasons.append(f"it failed its gates{named}")
    return AdmissionDecision(allowed=not reasons, reasons=tuple(reasons))


def _signed(details: Mapping[str, Any]) -> bool:
    record = details.get("signature")
    digest = record.get("bundle_digest") if isinstance(record, Mapping) else None
    return isinstance(digest, str) and bool(digest)


def _findings_above(details: Mapping[str, Any], max_severity: str) -> list[tuple[str, int]]:
    """Severities worse than ``max_severity`` with their counts, worst first."""
    scan = details.get("scan")
    findings = scan.get("findings") if isinstance(scan, Mapping) else None
    if not isinstance(findings, Mapping):
        return []
    worse: list[tuple[str, int]] = []
    for severity in SEVERITIES:
        count = findings.get(severity)
        if severity == max_severity:
            break
        if isinstance(count, int) and count > 0 and severity_at_least(severity, max_severity):
            worse.append((severity, count))
    return worse


def _failed_gates(details: Mapping[str, Any]) -> list[str] | None:
    """The names of the gates the version failed; None when it failed none (or records none)."""
    gates = details.get("gates")
    failed: list[str] = []
    if isinstance(gates, list):
        failed = [
            str(g.get("name", "?")) for g in gates if isinstance(g, Mapping) and not g.get("passed")
        ]
    if failed or details.get("gates_passed") is False:
        return failed
    return None
