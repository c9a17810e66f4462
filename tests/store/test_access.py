"""The access repository (identities, roles, grants, API tokens) on every store backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from opsloop.errors import AlreadyExistsError, AuthenticationError, NotFoundError, SecurityError
from opsloop.secops.access import ROLES as ACCESS_ROLES
from opsloop.store import Store, open_store
from opsloop.store import models as m
from opsloop.store.repos.access import LAST_USED_RESOLUTION, ROLES, TOKEN_PREFIX, hash_token


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


def test_the_store_knows_the_roles_access_decides_on() -> None:
    assert ROLES == ACCESS_ROLES


def test_create_get_list_identities(store: Store) -> None:
    alice = store.access.create_identity("alice@example.com", roles=["developer", "viewer"])
    assert alice.kind == "user" and alice.roles == ["viewer", "developer"]
    assert not alice.disabled and alice.grants == []
    bot = store.access.create_identity("ci-bot", kind="service", roles=["deployer"])
    assert bot.kind == "service"
    assert [i.name for i in store.access.list_identities()] == ["alice@example.com", "ci-bot"]
    assert store.access.get_identity("ci-bot") == bot
    assert store.access.find_identity("nobody") is None
    with pytest.raises(NotFoundError, match="identity 'nobody' does not exist"):
        store.access.get_identity("nobody")
    with pytest.raises(AlreadyExistsError, match="identity 'ci-bot' already exists"):
        store.access.create_identity("ci-bot")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "invalid identity name 'bad name'"),
        ({"name": "x\n"}, "invalid identity name"),
        ({"name": ""}, "invalid identity name"),
        ({"name": "a", "kind": "local"}, "unknown identity kind 'local'"),
        ({"name": "a", "roles": ["root"]}, "unknown role 'root'"),
    ],
)
def test_bad_identities_are_refused_and_nothing_is_written(
    store: Store, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SecurityError, match=message):
        store.access.create_identity(**kwargs)  # type: ignore[arg-type]
    assert store.access.list_identities() == []
    assert store.events.list() == []


def test_roles_and_grants_change_with_events(store: Store) -> None:
    store.access.create_identity("bob", roles=["viewer"])
    after = store.access.grant("bob", "deployer", resource_type="model", resource="churn")
    after = store.access.grant("bob", "developer")
    assert after.roles == ["viewer", "developer"]
    assert [(g.role, g.resource_type, g.resource) for g in after.grants] == [
        ("deployer", "model", "churn")
    ]
    # Granting again changes nothing and records nothing.
    n_events = len(store.events.list())
    assert store.access.grant("bob", "developer") == after
    assert len(store.events.list()) == n_events

    after = store.access.revoke("bob", "deployer", resource_type="model", resource="churn")
    assert after.grants == []
    after = store.access.revoke("bob", "viewer")
    assert after.roles == ["developer"]
    with pytest.raises(NotFoundError, match="does not hold the admin role on deployment 'web'"):
        store.access.revoke("bob", "admin", resource_type="deployment", resource="web")
    with pytest.raises(NotFoundError, match="does not hold the admin role"):
        store.access.revoke("bob", "admin")

    events = store.events.list(object_type="identity", object_id="bob")
    assert [e.kind for e in events] == [
        "identity.created",
        "identity.granted",
        "identity.granted",
        "identity.revoked",
        "identity.revoked",
    ]
    assert all(e.actor == "tester" for e in events)
    granted = events[1].details
    assert granted["role"] == "deployer" and granted["resource"] == "churn"
    assert granted["before"]["grants"] == []
    assert granted["after"]["grants"] == [
        {"role": "deployer", "resource_type": "model", "resource": "churn"}
    ]
    assert events[0].details["before"] is None
    assert events[0].details["after"]["roles"] == ["viewer"]
    assert events[4].details["before"]["roles"] == ["viewer", "developer"]
    assert events[4].details["after"]["roles"] == ["developer"]


@pytest.mark.parametrize(
    ("role", "resource_type", "resource", "message"),
    [
        ("boss", None, None, "unknown role 'boss'"),
        ("viewer", "pipeline", "x", "unknown resource type 'pipeline'"),
        ("viewer", "model", None, "invalid model name None"),
        ("viewer", "model", "a b", "invalid model name 'a b'"),
        ("viewer", None, "churn", "unknown resource type None"),
    ],
)
def test_bad_grants_are_refused(
    store: Store, role: str, resource_type: str | None, resource: str | None, message: str
) -> None:
    store.access.create_identity("carol")
    with pytest.raises(SecurityError, match=message):
        store.access.grant("carol", role, resource_type=resource_type, resource=resource)
    assert store.access.get_identity("carol").grants == []
    assert [e.kind for e in store.events.list()] == ["identity.created"]


def test_grant_to_unknown_identity(store: Store) -> None:
    with pytest.raises(NotFoundError, match="identity 'ghost' does not exist"):
        store.access.grant("ghost", "viewer")


def test_issue_authenticate_revoke(store: Store) -> None:
    store.access.create_identity("dave", roles=["developer"])
    store.access.grant("dave", "deployer", resource_type="deployment", resource="churn-prod")
    issued = store.access.issue_token("dave", name="laptop")
    assert issued.token.startswith(TOKEN_PREFIX) and len(issued.token) == len(TOKEN_PREFIX) + 43
    assert issued.token not in repr(issued)
    info = issued.info
    assert info.identity == "dave" and info.name == "laptop" and info.expires_at is None
    assert issued.token.startswith(info.prefix) and len(info.prefix) < 16
    assert info.last_used_at is None

    who = store.access.authenticate(issued.token)
    assert who.name == "dave" and who.roles == ["developer"]
    assert [(g.role, g.resource) for g in who.grants] == [("deployer", "churn-prod")]
    assert store.access.get_token(info.id).last_used_at is not None

    other = store.access.issue_token("dave")
    assert other.token != issued.token
    assert [t.id for t in store.access.list_tokens("dave")] == [info.id, other.info.id]
    assert [t.id for t in store.access.list_tokens()] == [info.id, other.info.id]

    revoked = store.access.revoke_token(info.id)
    assert revoked.revoked_at is not None
    assert revoked.state(revoked.revoked_at) == "revoked"
    with pytest.raises(AuthenticationError):
        store.access.authenticate(issued.token)
    assert store.access.authenticate(other.token).name == "dave"
    # Revoking twice changes nothing.
    assert store.access.revoke_token(info.id) == revoked
    with pytest.raises(NotFoundError, match="token 999 does not exist"):
        store.access.revoke_token(999)

    events = store.events.list(object_type="token")
    assert [e.kind for e in events] == ["token.issued", "token.issued", "token.revoked"]
    assert events[0].object_id == str(info.id)
    assert events[0].details["identity"] == "dave"
    assert events[0].details["before"] is None
    assert events[2].details["before"]["revoked_at"] is None
    assert events[2].details["after"]["revoked_at"] is not None


def test_every_refusal_has_one_message(store: Store) -> None:
    store.access.create_identity("erin", roles=["viewer"])
    expired = store.access.issue_token("erin", expires_at=m.utcnow() + timedelta(hours=1))
    with store.db.write() as s:
        s.execute(
            update(m.ApiToken)
            .where(m.ApiToken.id == expired.info.id)
            .values(expires_at=m.utcnow() - timedelta(seconds=1))
        )
    revoked = store.access.issue_token("erin")
    store.access.revoke_token(revoked.info.id)
    disabled_owner = store.access.issue_token("erin")
    unknown = TOKEN_PREFIX + "A" * 43
    messages = set()
    for token in (expired.token, revoked.token, unknown, "", "opsloop_short", "Bearer x"):
        with pytest.raises(AuthenticationError) as info:
            store.access.authenticate(token)
        messages.add(str(info.value))
    store.access.set_disabled("erin")
    with pytest.raises(AuthenticationError) as info:
        store.access.authenticate(disabled_owner.token)
    messages.add(str(info.value))
    assert len(messages) == 1, messages
    assert "invalid API token" in messages.pop()
    # Enabled again, the token works again.
    store.access.set_disabled("erin", False)
    assert store.access.authenticate(disabled_owner.token).name == "erin"


def test_disable_and_enable_record_events_once(store: Store) -> None:
    store.access.create_identity("frank")
    assert store.access.set_disabled("frank").disabled
    assert store.access.set_disabled("frank").disabled
    assert not store.access.set_disabled("frank", False).disabled
    kinds = [e.kind for e in store.events.list(object_id="frank")]
    assert kinds == ["identity.created", "identity.disabled", "identity.enabled"]
    disabled = store.events.list(kind="identity.disabled")[0].details
    assert disabled["before"]["disabled"] is False and disabled["after"]["disabled"] is True


def test_tokens_refused_for_disabled_or_past_expiry(store: Store) -> None:
    store.access.create_identity("gina")
    with pytest.raises(SecurityError, match="cannot expire in the past"):
        store.access.issue_token("gina", expires_at=m.utcnow() - timedelta(seconds=1))
    with pytest.raises(SecurityError, match="at most 128 characters"):
        store.access.issue_token("gina", name="x" * 129)
    store.access.set_disabled("gina")
    with pytest.raises(SecurityError, match="identity 'gina' is disabled"):
        store.access.issue_token("gina")
    with pytest.raises(NotFoundError):
        store.access.issue_token("nobody")
    assert store.access.list_tokens() == []
    with pytest.raises(NotFoundError):
        store.access.list_tokens("nobody")


def test_last_used_is_written_at_most_once_a_resolution(store: Store) -> None:
    store.access.create_identity("hal")
    issued = store.access.issue_token("hal")
    store.access.authenticate(issued.token)
    first = store.access.get_token(issued.info.id).last_used_at
    assert first is not None
    store.access.authenticate(issued.token)
    assert store.access.get_token(issued.info.id).last_used_at == first
    old = m.utcnow() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    with store.db.write() as s:
        s.execute(
            update(m.ApiToken).where(m.ApiToken.id == issued.info.id).values(last_used_at=old)
        )
    store.access.authenticate(issued.token)
    latest = store.access.get_token(issued.info.id).last_used_at
    assert latest is not None and latest > old + LAST_USED_RESOLUTION


def test_the_store_keeps_the_hash_not_the_token(store: Store) -> None:
    store.access.create_identity("ivy")
    issued = store.access.issue_token("ivy")
    with store.db.read() as s:
        row = s.get(m.ApiToken, issued.info.id)
        assert row is not None
        assert row.token_hash == hash_token(issued.token) != issued.token
    # The hash is not a token.
    with pytest.raises(AuthenticationError):
        store.access.authenticate(hash_token(issued.token))
