"""Bearer tokens become identities with the roles and grants the store holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from opsloop.errors import AuthenticationError, PermissionDeniedError, SecurityError
from opsloop.secops.access import Grant, Identity, authorize
from opsloop.secops.identities import identity_of, token_authenticator, token_expiry
from opsloop.store import Store, open_store
from opsloop.store import models as m
from opsloop.store.types import GrantInfo, IdentityInfo


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="admin")
    yield s
    s.close()


def test_authenticate_builds_the_identity(store: Store) -> None:
    store.access.create_identity("alice", roles=["developer"])
    store.access.grant("alice", "deployer", resource_type="model", resource="churn")
    store.access.grant("alice", "viewer", resource_type="deployment", resource="web")
    token = store.access.issue_token("alice").token
    authenticate = token_authenticator(store)

    me = authenticate(token)
    assert me == Identity(
        name="alice",
        kind="user",
        roles=frozenset({"developer"}),
        # Ordered by resource type, resource and role.
        grants=(
            Grant("viewer", "deployment", "web"),
            Grant("deployer", "model", "churn"),
        ),
    )
    # The grants decide: deployer on churn, developer elsewhere.
    authorize(me, "alias.move_protected", resource_type="model", resource="churn")
    with pytest.raises(PermissionDeniedError, match="needs the deployer role"):
        authorize(me, "alias.move_protected", resource_type="model", resource="fraud")
    authorize(me, "register", resource_type="model", resource="fraud")


def test_service_accounts(store: Store) -> None:
    store.access.create_identity("ci", kind="service", roles=["deployer"])
    me = token_authenticator(store)(store.access.issue_token("ci").token)
    assert me.kind == "service" and me.may("deploy.production")


def test_no_token(store: Store) -> None:
    with pytest.raises(AuthenticationError, match="needs an API token") as info:
        token_authenticator(store)(None)
    assert info.value.hint is not None and "opsloop login" in info.value.hint


def test_expired_revoked_disabled(store: Store) -> None:
    store.access.create_identity("bob", roles=["viewer"])
    authenticate = token_authenticator(store)
    soon = store.access.issue_token("bob", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert authenticate(soon.token).name == "bob"
    with store.db.write() as s:
        s.execute(
            update(m.ApiToken)
            .where(m.ApiToken.id == soon.info.id)
            .values(expires_at=datetime.now(UTC) - timedelta(microseconds=1))
        )
    with pytest.raises(AuthenticationError):
        authenticate(soon.token)

    revoked = store.access.issue_token("bob")
    assert authenticate(revoked.token).name == "bob"
    store.access.revoke_token(revoked.info.id)
    with pytest.raises(AuthenticationError):
        authenticate(revoked.token)

    kept = store.access.issue_token("bob")
    store.access.set_disabled("bob")
    with pytest.raises(AuthenticationError):
        authenticate(kept.token)


def test_roles_come_from_the_store_at_each_call(store: Store) -> None:
    store.access.create_identity("carol", roles=["viewer"])
    token = store.access.issue_token("carol").token
    authenticate = token_authenticator(store)
    assert not authenticate(token).may("register")
    store.access.grant("carol", "developer")
    assert authenticate(token).may("register")
    store.access.revoke("carol", "developer")
    assert not authenticate(token).may("register")


def test_identity_of_leaves_out_what_it_does_not_know() -> None:
    info = IdentityInfo(
        id=1,
        name="x",
        kind="user",
        roles=["viewer", "superuser"],
        disabled=False,
        created_at=datetime.now(UTC),
        grants=[
            GrantInfo(role="deployer", resource_type="pipeline", resource="p"),
            GrantInfo(role="root", resource_type="model", resource="m"),
            GrantInfo(role="admin", resource_type="deployment", resource="d"),
        ],
    )
    me = identity_of(info)
    assert me.roles == {"viewer"}
    assert me.grants == (Grant("admin", "deployment", "d"),)


def test_token_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert token_expiry("90d", now=now) == now + timedelta(days=90)
    assert token_expiry("12h", now=now) == now + timedelta(hours=12)
    assert token_expiry(" Never ") is None
    for bad in ("soon", "0d", "-1d", ""):
        with pytest.raises(SecurityError, match="invalid token lifetime"):
            token_expiry(bad, now=now)
