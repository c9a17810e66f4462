"""Enforce the admission policy (:mod:`opsloop.secops.admission`) where versions are used.

Alias moves, the reconciler before it deploys and :func:`~opsloop.registry.load_model` (what
the server loads models with) call :func:`require_admitted`: a refused version raises
:class:`~opsloop.errors.SecurityError` naming every reason, and the refusal is recorded as a
``security.refused`` event on the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import SecurityError
from opsloop.secops.admission import AdmissionDecision, admit
from opsloop.spec.schema import SecuritySection

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opsloop.context import Project
    from opsloop.store import Store

__all__ = [
    "REFUSED_EVENT",
    "admission_policy",
    "failed_gates_alias",
    "require_admitted",
    "require_alias_admitted",
]

#: The kind of the event every refusal records.
REFUSED_EVENT = "security.refused"


def _project(project: Project | None) -> Project:
    if project is not None:
        return project
    # Lazy (noqa: PLC0415): opsloop.context opens the project only when none is given.
    from opsloop.context import current_project  # noqa: PLC0415

    return current_project()


def admission_policy(project: Project | None = None) -> SecuritySection:
    """The ``security`` section of a project's ``opsloop.yaml`` (default: the current project);
    the secure defaults when it has none."""
    spec = _project(project).spec
    return spec.security if spec is not None else SecuritySection()


def failed_gates_alias(project: Project | None = None) -> str | None:
    """The alias that marks versions whose gates failed (``register.alias_on_fail``,
    ``challenger`` when the project does not say)."""
    spec = _project(project).spec
    if spec is None or spec.registration is None:
        return "challenger"
    return spec.registration.alias_on_fail


def require_admitted(
    store: Store,
    model: str,
    version: int | None,
    details: Mapping[str, Any],
    *,
    where: str,
    policy: SecuritySection,
    gates: bool = True,
    alias: str | None = None,
) -> AdmissionDecision:
    """Check a version's recorded ``details`` against ``policy``; record and raise a refusal.

    Args:
        store: Where the refusal event goes.
        model: The model's name.
        version: The version's number (None: one being registered).
        details: What the version records.
        where: What asked (``alias``, ``deploy``, ``load``), kept in the event.
        policy: The admission policy.
        gates: Whether the gates count.
        alias: The alias being moved, if that is what asked.

    Raises:
        SecurityError: The version is refused; the message names every reason.
    """
    decision = admit(details, policy, gates=gates)
    if decision.allowed:
        return decision
    what = f"model '{model}' " + ("new version" if version is None else f"version {version}")
    event: dict[str, Any] = {"where": where, "reasons": list(decision.reasons)}
    if alias is not None:
        event["alias"] = alias
    if version is None:
        store.events.emit(REFUSED_EVENT, "model", model, event)
    else:
        store.events.emit(REFUSED_EVENT, "model_version", f"{model}/{version}", event)
    doing = {
        "alias": f"cannot become {model}@{alias}",
        "deploy": "cannot be deployed",
        "load": "cannot be loaded",
    }.get(where, f"is refused ({where})")
    raise SecurityError(
        f"{what} {doing}: {decision.message}",
        hint="the 'security' section of opsloop.yaml sets what is admitted "
        "(require_signature, require_scan, require_gates, max_severity)",
    )


def require_alias_admitted(
    store: Store,
    model: str,
    alias: str,
    version: int | None,
    details: Mapping[str, Any],
    *,
    project: Project | None = None,
) -> AdmissionDecision:
    """Check that ``model@alias`` may point at a version, by the project's policy.

    Every alias is checked; the gates do not count for the alias that marks versions whose
    gates failed (:func:`failed_gates_alias`).

    Raises:
        SecurityError: The version is refused (recorded as a ``security.refused`` event).
    """
    proj = _project(project)
    return require_admitted(
        store,
        model,
        version,
        details,
        where="alias",
        policy=admission_policy(proj),
        gates=alias != failed_gates_alias(proj),
        alias=alias,
    )
