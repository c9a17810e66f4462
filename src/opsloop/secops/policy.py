"""The project's access policy (``access:`` in ``opsloop.yaml``) as actions to authorize.

The server and the loop ask here which action a change is, then :func:`authorize` whether
the caller may take it, so that what counts as protected is decided in one place::

    authorize(caller, alias_action("champion", spec.access), resource_type="model",
              resource="churn")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.secops.access import Identity
from opsloop.spec.schema import AccessSection

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opsloop.context import Project
    from opsloop.secops.access import Action

__all__ = ["access_policy", "alias_action", "deployment_action", "remediation_identity"]

_DEFAULT = AccessSection()


def access_policy(project: Project) -> AccessSection:
    """A project's ``access:`` section; the defaults when it has no ``opsloop.yaml``."""
    spec = project.spec
    return spec.access if spec is not None else _DEFAULT


def alias_action(alias: str, policy: AccessSection | None = None) -> Action:
    """The action moving (setting or deleting) ``alias`` is: ``alias.move_protected`` for a
    protected alias (``champion`` by default), else ``alias.move``."""
    protected = (policy or _DEFAULT).protected_aliases
    return "alias.move_protected" if alias in protected else "alias.move"


def deployment_action(
    name: str,
    policy: AccessSection | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> Action:
    """The action changing the deployment ``name`` (promote, set traffic, roll back …) is:
    ``deploy.production`` for a production deployment (named in the policy, or whose
    document's ``labels`` match its selector), else ``deploy``."""
    selector = (policy or _DEFAULT).production_deployments
    return "deploy.production" if selector.matches(name, dict(labels or {})) else "deploy"


def remediation_identity(policy: AccessSection | None = None) -> Identity:
    """The service account the remediation engine acts as, with the role the policy gives
    it (``opsloop-remediation`` with ``deployer`` by default)."""
    account = (policy or _DEFAULT).remediation
    return Identity(name=account.account, kind="service", roles=frozenset({account.role}))
