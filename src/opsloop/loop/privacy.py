"""Which columns a model server's prediction log must not keep as sent.

The server learns them from the project it serves for: the contract's columns tagged
``pii: true`` in ``opsloop.yaml``, logged by ``monitoring.prediction_log.pii`` (``hash``
with the project's salt, kept with its signing keys; ``drop``; or ``keep``). The project's
contract is the one place personal data is declared, and the one a reviewer reads; a model
version records no contract of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.data.contract import parse_contract
from opsloop.secops.keys import pii_salt

if TYPE_CHECKING:
    from opsloop.spec.schema import ProjectSpec

__all__ = ["pii_columns", "prediction_log_privacy"]


def pii_columns(spec: ProjectSpec) -> list[str]:
    """The columns the project's contract tags ``pii: true``."""
    if not spec.contract:
        return []
    contract = parse_contract(spec.contract)
    return [name for name, column in contract.columns.items() if column.pii]


def prediction_log_privacy(spec: ProjectSpec | None) -> dict[str, Any]:
    """The server options (``pii_columns``, ``pii_policy``, ``pii_salt``) for a project's
    personal-data columns; none without a project."""
    if spec is None:
        return {}
    columns = pii_columns(spec)
    policy = spec.monitoring.prediction_log.pii
    options: dict[str, Any] = {"pii_columns": columns, "pii_policy": policy}
    if columns and policy == "hash":
        options["pii_salt"] = pii_salt(spec.project).hex()
    return options
