"""Access control: who may do what, decided by one pure function.

Four roles, each holding the rights of the ones before it (as MLflow's permissions do, but
wider):

    viewer      read everything
    developer   log runs, version datasets, register model versions, move unprotected aliases
    deployer    move protected aliases, promote, set traffic, roll back, approve remediations,
                change production deployments
    admin       users, tokens, keys and policies

An identity has roles everywhere (``roles``) and may hold more on single models or deployments
(``grants``): a developer everywhere can be a deployer of the ``churn`` model only. The store
keeps identities and tokens; the server and the CLI ask :func:`authorize` before every call
that needs a right, and the answer depends on nothing else.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Literal, get_args

from opsloop.errors import PermissionDeniedError

__all__ = [
    "ACTION_ROLES",
    "DEFAULT_PROTECTED_ALIASES",
    "ROLES",
    "Action",
    "Grant",
    "Identity",
    "IdentityKind",
    "ResourceType",
    "Role",
    "authorize",
    "local_identity",
    "role_at_least",
]

Role = Literal["viewer", "developer", "deployer", "admin"]
IdentityKind = Literal["user", "service", "local"]
ResourceType = Literal["model", "deployment"]
Action = Literal[
    "read",
    "log",
    "register",
    "alias.move",
    "alias.move_protected",
    "deploy",
    "deploy.production",
    "remediation.approve",
    "admin",
]

#: The roles from least to most: each holds the rights of those before it.
ROLES: tuple[Role, ...] = get_args(Role)

#: The least role that may take each action.
ACTION_ROLES: dict[Action, Role] = {
    "read": "viewer",
    "log": "developer",
    "register": "developer",
    "alias.move": "developer",
    "alias.move_protected": "deployer",
    "deploy": "deployer",
    "deploy.production": "deployer",
    "remediation.approve": "deployer",
    "admin": "admin",
}

#: Aliases only a deployer may move, unless the project names others.
DEFAULT_PROTECTED_ALIASES: tuple[str, ...] = ("champion",)


def role_at_least(role: Role, least: Role) -> bool:
    """Whether ``role`` holds the rights of ``least``."""
    return ROLES.index(role) >= ROLES.index(least)


@dataclass(frozen=True)
class Grant:
    """A role on one model or one deployment.

    Args:
        role: The role held there.
        resource_type: ``model`` or ``deployment``.
        resource: The model's or the deployment's name.
    """

    role: Role
    resource_type: ResourceType
    resource: str


@dataclass(frozen=True)
class Identity:
    """A caller: a user, a service account, or the OS user in local single-user mode.

    Args:
        name: Unique name (a user's login, a service account's name).
        kind: ``user``, ``service`` or ``local``.
        roles: Roles held on everything.
        grants: Roles held on single models or deployments.
    """

    name: str
    kind: IdentityKind = "user"
    roles: frozenset[Role] = frozenset()
    grants: tuple[Grant, ...] = field(default=())

    def role_on(self, resource_type: ResourceType | None, resource: str | None) -> Role | None:
        """The highest role this identity holds on an object (its global roles included), or
        None when it holds none."""
        held = set(self.roles)
        if resource_type is not None and resource is not None:
            held.update(
                g.role
                for g in self.grants
                if g.resource_type == resource_type and g.resource == resource
            )
        return max(held, key=ROLES.index) if held else None

    def may(
        self,
        action: Action,
        *,
        resource_type: ResourceType | None = None,
        resource: str | None = None,
    ) -> bool:
        """Whether this identity may take ``action`` (on the object, when one is named)."""
        role = self.role_on(resource_type, resource)
        return role is not None and role_at_least(role, ACTION_ROLES[action])


def authorize(
    identity: Identity,
    action: Action,
    *,
    resource_type: ResourceType | None = None,
    resource: str | None = None,
) -> None:
    """Allow the action or raise.

    Raises:
        PermissionDeniedError: The identity's roles and grants do not reach the role the action
            needs; the message names the identity, the action, the object and that role.
    """
    if identity.may(action, resource_type=resource_type, resource=resource):
        return
    need = ACTION_ROLES[action]
    on = f" on {resource_type} '{resource}'" if resource_type and resource else ""
    held = identity.role_on(resource_type, resource)
    raise PermissionDeniedError(
        f"{identity.name} may not {action}{on}: it needs the {need} role"
        f" (holds {held or 'no role'})",
        hint=f"an admin can grant it: opsloop users grant {identity.name} {need}"
        + (f" --{resource_type} {resource}" if resource_type and resource else ""),
    )


def local_identity() -> Identity:
    """The identity of local single-user mode: the OS user, with every role."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = "local"
    return Identity(name=name, kind="local", roles=frozenset(ROLES))
