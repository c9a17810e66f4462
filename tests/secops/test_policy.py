"""The ``access:`` policy of opsloop.yaml, and the actions it makes of alias and deployment
changes."""

from __future__ import annotations

from typing import get_args

import pytest

from opsloop.errors import PermissionDeniedError, SpecError
from opsloop.secops.access import ROLES, Identity, authorize
from opsloop.secops.policy import alias_action, deployment_action, remediation_identity
from opsloop.spec import parse_spec
from opsloop.spec.schema import AccessRole, AccessSection


def test_the_spec_knows_the_roles_access_decides_on() -> None:
    assert get_args(AccessRole) == ROLES


def test_defaults() -> None:
    policy = parse_spec("project: p\n").access
    assert policy == AccessSection()
    assert policy.protected_aliases == ["champion"]
    assert policy.production_deployments.names == []
    assert policy.production_deployments.labels == {"env": "production"}
    assert policy.remediation.account == "opsloop-remediation"
    assert policy.remediation.role == "deployer"


def test_alias_action() -> None:
    assert alias_action("champion") == "alias.move_protected"
    assert alias_action("challenger") == "alias.move"
    policy = parse_spec("project: p\naccess: {protected_aliases: [prod, stable]}\n").access
    assert alias_action("prod", policy) == "alias.move_protected"
    assert alias_action("champion", policy) == "alias.move"
    unprotected = parse_spec("project: p\naccess: {protected_aliases: []}\n").access
    assert alias_action("champion", unprotected) == "alias.move"


def test_deployment_action_by_name_and_labels() -> None:
    assert deployment_action("churn-prod", labels={"env": "production"}) == "deploy.production"
    assert deployment_action("churn-prod") == "deploy"
    assert deployment_action("churn-prod", labels={"env": "staging"}) == "deploy"

    text = (
        "project: p\n"
        "access:\n"
        "  production_deployments:\n"
        "    names: [churn-prod]\n"
        "    labels: {tier: prod, team: growth}\n"
    )
    policy = parse_spec(text).access
    assert deployment_action("churn-prod", policy) == "deploy.production"
    both = {"tier": "prod", "team": "growth", "x": "y"}
    assert deployment_action("other", policy, labels=both) == "deploy.production"
    # Every pair must match.
    assert deployment_action("other", policy, labels={"tier": "prod"}) == "deploy"
    assert deployment_action("other", policy, labels={"env": "production"}) == "deploy"


def test_a_list_is_names_and_empty_labels_match_nothing() -> None:
    policy = parse_spec("project: p\naccess: {production_deployments: [web]}\n").access
    assert policy.production_deployments.names == ["web"]
    assert deployment_action("web", policy) == "deploy.production"
    none = parse_spec("project: p\naccess: {production_deployments: {labels: {}}}\n").access
    assert deployment_action("web", none, labels={"env": "production"}) == "deploy"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{protected_aliases: ['bad alias']}", "access.protected_aliases.0"),
        ("{production_deployments: ['a b']}", "access.production_deployments.names.0"),
        ("{remediation: {role: root}}", "access.remediation.role"),
        ("{remediation: {account: 'x y'}}", "access.remediation.account"),
        ("{protect: [champion]}", "access.protect"),
    ],
)
def test_bad_policies_name_the_field(body: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(f"project: p\naccess: {body}\n")
    assert f"field '{field}'" in str(info.value), str(info.value)
    assert "opsloop.yaml:2" in str(info.value)


def test_the_remediation_account_holds_the_role_the_policy_gives() -> None:
    bot = remediation_identity()
    assert bot == Identity(
        name="opsloop-remediation", kind="service", roles=frozenset({"deployer"})
    )
    for action in ("deploy.production", "alias.move_protected", "remediation.approve"):
        authorize(bot, action, resource_type="deployment", resource="churn-prod")
    with pytest.raises(PermissionDeniedError, match="opsloop-remediation may not admin"):
        authorize(bot, "admin")

    policy = parse_spec(
        "project: p\naccess: {remediation: {account: healer, role: developer}}\n"
    ).access
    healer = remediation_identity(policy)
    assert healer.name == "healer" and healer.roles == {"developer"}
    authorize(healer, "register")
    action = deployment_action("web", policy, labels={"env": "production"})
    with pytest.raises(PermissionDeniedError, match="needs the deployer role"):
        authorize(healer, action, resource_type="deployment", resource="web")
