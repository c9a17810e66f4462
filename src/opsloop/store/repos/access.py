"""Identities, their roles and grants, and their API tokens.

A token is ``opsloop_`` followed by 43 URL-safe characters (32 bytes from :mod:`secrets`). It
is shown once, when issued; the store keeps its SHA-256 and the first characters (to tell
tokens apart in a list). Every change records an audit event in the same transaction, with
what was before and after, and never a token or its hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from opsloop.errors import AlreadyExistsError, AuthenticationError, NotFoundError, SecurityError
from opsloop.redact import API_TOKEN, API_TOKEN_PREFIX
from opsloop.store import models as m
from opsloop.store.types import GrantInfo, IdentityInfo, IssuedToken, TokenInfo

if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.orm import Session

    from opsloop.store.db import Database

__all__ = [
    "IDENTITY_KINDS",
    "IDENTITY_NAME_RULE",
    "LAST_USED_RESOLUTION",
    "RESOURCE_TYPES",
    "ROLES",
    "TOKEN_PREFIX",
    "AccessRepository",
    "hash_token",
]

#: The roles from least to most (as :data:`opsloop.secops.access.ROLES`, which the store
#: cannot import: it sits below it; a test checks the two agree).
ROLES: tuple[str, ...] = ("viewer", "developer", "deployer", "admin")
IDENTITY_KINDS: tuple[str, ...] = ("user", "service")
RESOURCE_TYPES: tuple[str, ...] = ("model", "deployment")

#: What every token starts with, so that a secrets scanner (and a person) recognises one.
TOKEN_PREFIX = API_TOKEN_PREFIX
_TOKEN_BYTES = 32
#: How much of a token the store keeps to tell tokens apart: the prefix and 6 of its 43
#: random characters (the other 37 hold 222 bits).
_SHOWN = len(TOKEN_PREFIX) + 6

#: ``last_used_at`` is written at most this often per token, so that authenticating a
#: request is a read, not a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_IDENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")
IDENTITY_NAME_RULE = (
    "letters, digits, '_', '-', '.', '@' (1-128 characters, starting with a letter or digit)"
)
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")

# One message for every refusal, so that a caller cannot learn whether a token exists, has
# expired or was revoked, or whether its identity was disabled.
_DENIED = "invalid API token: it is unknown, expired or revoked, or its identity is disabled"
_DENIED_HINT = "ask an admin for a new one: opsloop tokens create USER"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest the store keeps of a token.

    A fast hash is right here, unlike for passwords: a token holds 256 random bits, so there
    is no dictionary to try and nothing a slow hash would protect.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_identity_name(name: object) -> str:
    if not isinstance(name, str) or not _IDENTITY_NAME.fullmatch(name):
        raise SecurityError(f"invalid identity name {name!r}: use {IDENTITY_NAME_RULE}")
    return name


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise SecurityError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    assert isinstance(role, str)
    return role


def _check_resource(resource_type: str | None, resource: str | None) -> None:
    if resource_type is None and resource is None:
        return
    if resource_type not in RESOURCE_TYPES:
        raise SecurityError(
            f"unknown resource type {resource_type!r}: use {' or '.join(RESOURCE_TYPES)}"
        )
    if not isinstance(resource, str) or not _RESOURCE_NAME.fullmatch(resource):
        raise SecurityError(f"invalid {resource_type} name {resource!r}")


def _sorted_roles(roles: Iterable[str]) -> list[str]:
    return sorted(set(roles), key=ROLES.index)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


class AccessRepository:
    """Identities, their roles and grants, and their API tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- identities -------------------------------------------------------------------------

    def create_identity(
        self, name: str, *, kind: str = "user", roles: Iterable[str] = ()
    ) -> IdentityInfo:
        """Add a user or a service account holding ``roles`` on everything.

        Raises:
            SecurityError: The name, kind or a role is invalid.
            AlreadyExistsError: The name is taken.
        """
        _check_identity_name(name)
        if kind not in IDENTITY_KINDS:
            raise SecurityError(f"unknown identity kind {kind!r}: use user or service")
        held = _sorted_roles(_check_role(r) for r in roles)
        try:
            with self.db.write() as s:
                if s.scalar(select(m.AccessIdentity.id).where(m.AccessIdentity.name == name)):
                    raise AlreadyExistsError(f"identity '{name}' already exists")
                row = m.AccessIdentity(name=name, kind=kind, roles=held, disabled=False)
                s.add(row)
                s.flush()
                info = self._info(s, row)
                self.db.event(
                    s,
                    "identity.created",
                    "identity",
                    name,
                    {"before": None, "after": self._state(info)},
                )
        except IntegrityError as exc:  # created by another writer between check and insert
            raise AlreadyExistsError(f"identity '{name}' already exists") from exc
        return info

    def get_identity(self, name: str) -> IdentityInfo:
        """An identity with its grants; NotFoundError if absent."""
        with self.db.read() as s:
            return self._info(s, self._row(s, name))

    def find_identity(self, name: str) -> IdentityInfo | None:
        """An identity with its grants, or None."""
        with self.db.read() as s:
            row = s.scalar(select(m.AccessIdentity).where(m.AccessIdentity.name == name))
            return self._info(s, row) if row is not None else None

    def list_identities(self) -> builtins.list[IdentityInfo]:
        """Every identity, by name."""
        with self.db.read() as s:
            rows = s.scalars(select(m.AccessIdentity).order_by(m.AccessIdentity.name)).all()
            return [self._info(s, r) for r in rows]

    def set_disabled(self, name: str, disabled: bool = True) -> IdentityInfo:
        """Disable an identity (none of its tokens authenticates) or enable it again.

        An event ``identity.disabled`` or ``identity.enabled`` is recorded when it changes.
        """
        with self.db.write() as s:
            row = self._row(s, name, lock=True)
            if row.disabled != disabled:
                before = self._state(self._info(s, row))
                row.disabled = disabled
                s.flush()
                info = self._info(s, row)
                self.db.event(
                    s,
                    "identity.disabled" if disabled else "identity.enabled",
                    "identity",
                    name,
                    {"before": before, "after": self._state(info)},
                )
                return info
            return self._info(s, row)

    def grant(
        self,
        name: str,
        role: str,
        *,
        resource_type: str | None = None,
        resource: str | None = None,
    ) -> IdentityInfo:
        """Give ``name`` a role on everything, or on one model or deployment.

        Granting a role already held changes nothing and records no event.
        """
        return self._change(name, role, resource_type, resource, add=True)

    def revoke(
        self,
        name: str,
        role: str,
        *,
        resource_type: str | None = None,
        resource: str | None = None,
    ) -> IdentityInfo:
        """Take a role on everything, or on one model or deployment, from ``name``.

        Raises:
            NotFoundError: The identity does not hold that role there.
        """
        return self._change(name, role, resource_type, resource, add=False)

    def _change(
        self,
        name: str,
        role: str,
        resource_type: str | None,
        resource: str | None,
        *,
        add: bool,
    ) -> IdentityInfo:
        _check_role(role)
        _check_resource(resource_type, resource)
        on = f" on {resource_type} '{resource}'" if resource_type is not None else ""
        with self.db.write() as s:
            row = self._row(s, name, lock=True)
            before = self._info(s, row)
            if resource_type is None:
                held = role in row.roles
                if add and not held:
                    row.roles = _sorted_roles([*row.roles, role])
                elif not add and held:
                    row.roles = [r for r in row.roles if r != role]
            else:
                assert resource is not None
                found = s.scalar(
                    select(m.AccessGrant).where(
                        m.AccessGrant.identity_id == row.id,
                        m.AccessGrant.role == role,
                        m.AccessGrant.resource_type == resource_type,
                        m.AccessGrant.resource == resource,
                    )
                )
                held = found is not None
                if add and not held:
                    s.add(
                        m.AccessGrant(
                            identity_id=row.id,
                            role=role,
                            resource_type=resource_type,
                            resource=resource,
                        )
                    )
                elif not add and found is not None:
                    s.delete(found)
            if not add and not held:
                raise NotFoundError(f"identity '{name}' does not hold the {role} role{on}")
            if add == held:  # nothing to do
                return before
            s.flush()
            after = self._info(s, row)
            self.db.event(
                s,
                "identity.granted" if add else "identity.revoked",
                "identity",
                name,
                {
                    "role": role,
                    "resource_type": resource_type,
                    "resource": resource,
                    "before": self._state(before),
                    "after": self._state(after),
                },
            )
            return after

    def _row(self, s: Session, name: str, *, lock: bool = False) -> m.AccessIdentity:
        query = select(m.AccessIdentity).where(m.AccessIdentity.name == name)
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        row = s.scalar(query)
        if row is None:
            raise NotFoundError(
                f"identity '{name}' does not exist", hint="see 'opsloop users list'"
            )
        return row

    def _info(self, s: Session, row: m.AccessIdentity) -> IdentityInfo:
        grants = s.scalars(
            select(m.AccessGrant)
            .where(m.AccessGrant.identity_id == row.id)
            .order_by(m.AccessGrant.resource_type, m.AccessGrant.resource, m.AccessGrant.role)
        ).all()
        return IdentityInfo(
            id=row.id,
            name=row.name,
            kind=row.kind,
            roles=_sorted_roles(row.roles),
            disabled=row.disabled,
            created_at=row.created_at,
            grants=[GrantInfo.model_validate(g) for g in grants],
        )

    @staticmethod
    def _state(info: IdentityInfo) -> dict[str, Any]:
        """What an event records of an identity, before or after a change."""
        return {
            "kind": info.kind,
            "roles": list(info.roles),
            "grants": [g.model_dump() for g in info.grants],
            "disabled": info.disabled,
        }

    # -- tokens -----------------------------------------------------------------------------

    def issue_token(
        self, identity: str, *, name: str = "", expires_at: datetime | None = None
    ) -> IssuedToken:
        """Make a new API token for ``identity``, valid until ``expires_at`` (None: until
        revoked). The returned token is the only copy: the store keeps its hash.

        Raises:
            NotFoundError: No such identity.
            SecurityError: The identity is disabled, the name is too long, or ``expires_at``
                has passed.
        """
        if len(name) > 128:
            raise SecurityError("a token's name has at most 128 characters")
        now = m.utcnow()
        if expires_at is not None and expires_at <= now:
            raise SecurityError(f"a token cannot expire in the past ({expires_at.isoformat()})")
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        with self.db.write() as s:
            owner = self._row(s, identity)
            if owner.disabled:
                raise SecurityError(
                    f"identity '{identity}' is disabled: it cannot be given a token",
                    hint=f"enable it first: opsloop users enable {identity}",
                )
            row = m.ApiToken(
                identity_id=owner.id,
                name=name,
                token_hash=hash_token(token),
                prefix=token[:_SHOWN],
                created_at=now,
                expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            info = self._token_info(row, identity)
            self.db.event(
                s,
                "token.issued",
                "token",
                str(row.id),
                {"identity": identity, "before": None, "after": self._token_state(info)},
            )
        return IssuedToken(info=info, token=token)

    def list_tokens(self, identity: str | None = None) -> builtins.list[TokenInfo]:
        """Every token (of ``identity``, if given), oldest first; revoked ones included.

        Raises:
            NotFoundError: ``identity`` is given and does not exist.
        """
        with self.db.read() as s:
            query = select(m.ApiToken, m.AccessIdentity.name).join(
                m.AccessIdentity, m.AccessIdentity.id == m.ApiToken.identity_id
            )
            if identity is not None:
                query = query.where(m.ApiToken.identity_id == self._row(s, identity).id)
            rows = s.execute(query.order_by(m.ApiToken.id)).all()
            return [self._token_info(tok, owner) for tok, owner in rows]

    def get_token(self, token_id: int) -> TokenInfo:
        """A token's record by id; NotFoundError if absent."""
        with self.db.read() as s:
            tok, owner = self._token_row(s, token_id)
            return self._token_info(tok, owner)

    def revoke_token(self, token_id: int) -> TokenInfo:
        """Revoke a token now; revoking a revoked token changes nothing.

        Raises:
            NotFoundError: No token has that id.
        """
        with self.db.write() as s:
            tok, owner = self._token_row(s, token_id)
            if tok.revoked_at is not None:
                return self._token_info(tok, owner)
            before = self._token_info(tok, owner)
            tok.revoked_at = m.utcnow()
            s.flush()
            after = self._token_info(tok, owner)
            self.db.event(
                s,
                "token.revoked",
                "token",
                str(tok.id),
                {
                    "identity": owner,
                    "before": self._token_state(before),
                    "after": self._token_state(after),
                },
            )
            return after

    def authenticate(self, token: str) -> IdentityInfo:
        """The identity a token belongs to, when the token is valid now.

        The token is looked up by its SHA-256: what the database compares is a hash the
        caller cannot steer, so the time a lookup takes says nothing about stored tokens.

        Raises:
            AuthenticationError: The token is malformed, unknown, expired or revoked, or its
                identity is disabled (one message for all, which does not say which).
        """
        if not isinstance(token, str) or not API_TOKEN.fullmatch(token):
            raise AuthenticationError(_DENIED, hint=_DENIED_HINT)
        digest = hash_token(token)
        now = m.utcnow()
        with self.db.read() as s:
            found = s.execute(
                select(m.ApiToken, m.AccessIdentity)
                .join(m.AccessIdentity, m.AccessIdentity.id == m.ApiToken.identity_id)
                .where(m.ApiToken.token_hash == digest)
            ).first()
            if found is None:
                raise AuthenticationError(_DENIED, hint=_DENIED_HINT)
            tok, owner = found
            if (
                tok.revoked_at is not None
                or (tok.expires_at is not None and tok.expires_at <= now)
                or owner.disabled
            ):
                raise AuthenticationError(_DENIED, hint=_DENIED_HINT)
            info = self._info(s, owner)
            stale = tok.last_used_at is None or now - tok.last_used_at >= LAST_USED_RESOLUTION
            token_id = tok.id
        if stale:
            self._touch(token_id, now)
        return info

    def _touch(self, token_id: int, now: datetime) -> None:
        # A conditional update, so that concurrent requests with one token write it once.
        with self.db.write() as s:
            s.execute(
                update(m.ApiToken)
                .where(
                    m.ApiToken.id == token_id,
                    or_(
                        m.ApiToken.last_used_at.is_(None),
                        m.ApiToken.last_used_at < now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )

    def _token_row(self, s: Session, token_id: int) -> tuple[m.ApiToken, str]:
        found = s.execute(
            select(m.ApiToken, m.AccessIdentity.name)
            .join(m.AccessIdentity, m.AccessIdentity.id == m.ApiToken.identity_id)
            .where(m.ApiToken.id == token_id)
        ).first()
        if found is None:
            raise NotFoundError(
                f"token {token_id} does not exist", hint="see 'opsloop tokens list'"
            )
        return found[0], found[1]

    @staticmethod
    def _token_info(row: m.ApiToken, identity: str) -> TokenInfo:
        return TokenInfo(
            id=row.id,
            identity=identity,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )

    @staticmethod
    def _token_state(info: TokenInfo) -> dict[str, Any]:
        """What an event records of a token: never the token, its hash or its prefix."""
        return {
            "id": info.id,
            "identity": info.identity,
            "name": info.name,
            "expires_at": _iso(info.expires_at),
            "revoked_at": _iso(info.revoked_at),
        }
