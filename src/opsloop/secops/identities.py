"""Identities from the store for the control plane: a bearer token becomes an
:class:`~opsloop.secops.access.Identity` with its roles and grants.

Users, service accounts and their tokens live in the store (``store.access``); this module
turns them into what :func:`~opsloop.secops.access.authorize` decides on, and reads the
expiry people give a new token (``90d``, ``never``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opsloop.errors import AuthenticationError, SecurityError
from opsloop.secops.access import ROLES, Grant, Identity
from opsloop.spec.monitoring import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from opsloop.secops.access import IdentityKind, ResourceType, Role
    from opsloop.store import Store
    from opsloop.store.types import IdentityInfo

__all__ = ["DEFAULT_TOKEN_LIFETIME", "identity_of", "token_authenticator", "token_expiry"]

_ROLES: dict[str, Role] = {r: r for r in ROLES}
_RESOURCE_TYPES: dict[str, ResourceType] = {"model": "model", "deployment": "deployment"}

#: How long a token lives unless its issuer says otherwise.
DEFAULT_TOKEN_LIFETIME = "90d"


def identity_of(info: IdentityInfo) -> Identity:
    """The identity :func:`~opsloop.secops.access.authorize` decides on, from the store's
    record (a role or resource type this opsloop does not know is left out)."""
    kind: IdentityKind = "service" if info.kind == "service" else "user"
    grants: list[Grant] = []
    for g in info.grants:
        role, resource_type = _ROLES.get(g.role), _RESOURCE_TYPES.get(g.resource_type)
        if role is not None and resource_type is not None:
            grants.append(Grant(role=role, resource_type=resource_type, resource=g.resource))
    roles = frozenset(_ROLES[r] for r in info.roles if r in _ROLES)
    return Identity(name=info.name, kind=kind, roles=roles, grants=tuple(grants))


def token_authenticator(store: Store) -> Callable[[str | None], Identity]:
    """An authenticator for :func:`opsloop.api.create_app`: a request's bearer token
    becomes the identity it was issued to, with its roles and grants as the store holds them
    now (a revoked token, or a role taken away, counts from the next request).

    Raises (from the returned function):
        AuthenticationError: No token was sent, or it is not valid now.
    """

    def authenticate(token: str | None) -> Identity:
        if token is None:
            raise AuthenticationError(
                "this server needs an API token: send 'Authorization: Bearer <token>'",
                hint="log in with 'opsloop login URL'; an admin makes tokens with "
                "'opsloop tokens create USER'",
            )
        return identity_of(store.access.authenticate(token))

    return authenticate


def token_expiry(value: str, *, now: datetime | None = None) -> datetime | None:
    """When a token given ``value`` (``90d``, ``12h``, ``1d12h`` or ``never``) expires.

    Raises:
        SecurityError: ``value`` is neither a positive duration nor ``never``.
    """
    text = value.strip().lower()
    if text == "never":
        return None
    try:
        lifetime = parse_duration(text)
    except ValueError as exc:
        raise SecurityError(
            f"invalid token lifetime {value!r}: use a duration such as 90d or 12h, or never"
        ) from exc
    return (now or datetime.now(UTC)) + lifetime
