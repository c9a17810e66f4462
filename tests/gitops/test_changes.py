"""promote, set-traffic and rollback: each one commit, with an audit event."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from sqlalchemy import select

from opsloop.context import Project
from opsloop.errors import ConfigError, GitOpsError, NotFoundError, SpecError
from opsloop.gitops import (
    DeploymentDocument,
    document_history,
    parse_document,
    parse_weights,
    promote,
    rollback,
    set_traffic,
)
from opsloop.gitops.changes import FIRST_PORT, resize
from opsloop.settings import load_settings
from opsloop.store import models as m
from tests.gitops.conftest import doc, git


def _doc(project: Project, file: str = "deploy/churn-prod.yaml") -> DeploymentDocument:
    return parse_document(git(project.dir, "show", f"HEAD:{file}"), file)


def _events(project: Project, kind: str) -> list[m.Event]:
    with project.store.db.read() as s:
        return list(s.scalars(select(m.Event).where(m.Event.kind == kind)))


def test_promote_creates_a_document_with_defaults(repo_project: Project, models: list[int]) -> None:
    res = promote("churn", to="churn-prod", alias="champion", project=repo_project)
    assert res.commit is not None and res.version == 2
    assert res.file == "deploy/churn-prod.yaml"
    d = _doc(repo_project)
    assert (d.spec.model, d.spec.version, d.spec.alias, d.spec.replicas) == ("churn", 2, None, 1)
    assert d.spec.port >= FIRST_PORT
    assert (
        d.spec.sync_policy.automated and d.spec.sync_policy.self_heal and d.spec.sync_policy.prune
    )
    log = git(repo_project.dir, "log", "-1", "--format=%an|%s%n%b")
    assert log.startswith(f"opsloop ({repo_project.settings.resolved_actor()})|")
    # A new deployment is deployed, not "promoted v2 -> v2".
    assert "|deploy churn v2 (@champion) to churn-prod\n" in log
    assert "resolved to version 2" in log
    [event] = _events(repo_project, "deployment.promoted")
    assert event.object_id == "churn-prod" and event.details["commit"] == res.commit
    # The working tree holds exactly what was committed.
    assert git(repo_project.dir, "status", "--porcelain") == ""


def test_promote_skips_ports_in_use(repo_project: Project, models: list[int]) -> None:
    promote("churn", to="first", project=repo_project)
    taken = _doc(repo_project, "deploy/first.yaml").spec.port
    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", taken + 1))
            busy.listen()
        except OSError:
            pass  # another process holds it already: in use either way
        promote("churn", to="second", project=repo_project)
    port = _doc(repo_project, "deploy/second.yaml").spec.port
    assert port not in (taken, taken + 1)


def test_new_deployments_take_ports_from_the_configured_range(
    repo_project: Project, models: list[int]
) -> None:
    repo_project.settings.ports = "9301-9302"
    promote("churn", to="first", project=repo_project)
    promote("churn", to="second", project=repo_project)
    ports = {_doc(repo_project, f"deploy/{n}.yaml").spec.port for n in ("first", "second")}
    assert ports == {9301, 9302}
    with pytest.raises(GitOpsError, match="no free port between 9301 and 9302") as info:
        promote("churn", to="third", project=repo_project)
    assert info.value.hint is not None and "OPSLOOP_PORTS" in info.value.hint
    # Nothing was committed for the deployment that found no port.
    assert not (repo_project.dir / "deploy" / "third.yaml").exists()


@pytest.mark.parametrize("value", ["8700", "9000-8999", "80-90", "8601-70000", "a-b"])
def test_a_malformed_port_range_is_refused_naming_the_setting(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_PORTS", value)
    with pytest.raises(ConfigError, match="OPSLOOP_PORTS: "):
        load_settings()


def test_promote_pins_the_version_the_alias_names_now(
    repo_project: Project, models: list[int]
) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    repo_project.store.models.set_alias("churn", "champion", 3)
    assert _doc(repo_project).spec.version == 2
    res = promote("churn", to="churn-prod", project=repo_project)
    assert res.version == 3 and _doc(repo_project).spec.version == 3
    assert res.message == "promote churn v3 (@champion) to churn-prod (was v2)"
    again = promote("churn", to="churn-prod", project=repo_project)
    assert again.commit is None


def test_promote_replaces_a_split_and_keeps_the_rest(
    repo_project: Project, models: list[int], commit_doc: Callable[..., str]
) -> None:
    extra = (
        "  traffic: [{version: 1, weight: 50}, {version: 3, weight: 50}]\n"
        "  shadow: [2]\n"
        "  replicas: 2\n"
    )
    commit_doc("churn-prod.yaml", doc("churn-prod", 8611, extra=extra))
    res = promote("churn", to="churn-prod", version=2, alias=None, project=repo_project)
    assert res.message == "promote churn v2 to churn-prod (was v1 50%, v3 50%; shadow v2)"
    d = _doc(repo_project)
    assert (d.spec.version, d.spec.traffic, d.spec.shadow) == (2, None, [])
    assert (d.spec.port, d.spec.replicas) == (8611, 2)


def test_promote_refuses_another_model(repo_project: Project, models: list[int]) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    with pytest.raises(GitOpsError, match="serves model 'churn', not 'fraud'"):
        promote("fraud", to="churn-prod", version=1, alias=None, project=repo_project)


def test_promote_unknown_alias(repo_project: Project, models: list[int]) -> None:
    with pytest.raises(NotFoundError, match="has no alias 'gold'"):
        promote("churn", to="x", alias="gold", project=repo_project)


def test_set_traffic(repo_project: Project, models: list[int]) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    res = set_traffic("churn-prod", parse_weights(["2=90", "3=10"]), project=repo_project)
    assert res.message == "set churn-prod traffic to v2 90%, v3 10% (was v2)"
    d = _doc(repo_project)
    assert [(t.version, t.weight) for t in d.spec.traffic or []] == [(2, 90), (3, 10)]
    assert d.spec.version == 2
    # Everything to v3: the split collapses into the main version.
    res = set_traffic("churn-prod", {3: 100}, project=repo_project)
    assert res.message == "set churn-prod traffic to v3 100% (was v2 90%, v3 10%)"
    d = _doc(repo_project)
    assert (d.spec.version, d.spec.traffic) == (3, None)
    res = set_traffic("churn-prod", {1: 30, 3: 70}, shadow=[2], project=repo_project)
    assert res.message == "set churn-prod traffic to v1 30%, v3 70%; shadow v2 (was v3)"
    d = _doc(repo_project)
    assert (d.spec.version, d.spec.shadow) == (3, [2])
    assert len(_events(repo_project, "deployment.traffic_changed")) == 3


def test_set_traffic_main_version_follows_the_largest_share(
    repo_project: Project, models: list[int]
) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    set_traffic("churn-prod", {1: 30, 3: 70}, project=repo_project)
    assert _doc(repo_project).spec.version == 3


def test_set_traffic_errors(repo_project: Project, models: list[int]) -> None:
    with pytest.raises(NotFoundError, match="no document"):
        set_traffic("nobody", {1: 100}, project=repo_project)
    with pytest.raises(NotFoundError, match="'nobody' has no document"):
        resize("nobody", replicas=2, project=repo_project)
    promote("churn", to="churn-prod", project=repo_project)
    with pytest.raises(NotFoundError, match="version 7"):
        set_traffic("churn-prod", {2: 50, 7: 50}, project=repo_project)
    with pytest.raises(SpecError, match="add up to 100"):
        set_traffic("churn-prod", {2: 50, 3: 20}, project=repo_project)
    with pytest.raises(GitOpsError, match="expected VERSION=WEIGHT"):
        parse_weights(["2:50"])
    head = git(repo_project.dir, "rev-parse", "HEAD")
    assert git(repo_project.dir, "status", "--porcelain") == ""
    assert head == git(repo_project.dir, "rev-parse", "HEAD")


def test_rollback_reverts_the_last_change(repo_project: Project, models: list[int]) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    set_traffic("churn-prod", {2: 90, 3: 10}, project=repo_project)
    res = rollback("churn-prod", project=repo_project)
    assert res.message == 'Revert "set churn-prod traffic to v2 90%, v3 10% (was v2)"'
    assert _doc(repo_project).spec.traffic is None
    assert res.version == 2
    [event] = _events(repo_project, "deployment.rolled_back")
    assert event.details["commit"] == res.commit
    # A second rollback undoes the first.
    rollback("churn-prod", project=repo_project)
    assert _doc(repo_project).spec.traffic is not None


def test_rollback_to_a_revision(repo_project: Project, models: list[int]) -> None:
    first = promote("churn", to="churn-prod", version=1, alias=None, project=repo_project)
    promote("churn", to="churn-prod", version=2, alias=None, project=repo_project)
    promote("churn", to="churn-prod", version=3, alias=None, project=repo_project)
    assert first.commit is not None
    res = rollback("churn-prod", to=first.commit[:8], project=repo_project)
    assert res.version == 1 and res.message == f"roll back churn-prod to {first.commit[:10]}"
    assert _doc(repo_project).spec.version == 1
    history = document_history("churn-prod", project=repo_project)
    assert history[0].subject == res.message
    assert len(history) == 4


def test_rollback_of_the_creation_removes_the_document(
    repo_project: Project, models: list[int]
) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    rollback("churn-prod", project=repo_project)
    assert not (repo_project.dir / "deploy" / "churn-prod.yaml").exists()


def test_an_invalid_document_is_refused_but_can_be_rolled_back(
    repo_project: Project, models: list[int], commit_doc: Callable[..., str]
) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    good = (repo_project.dir / "deploy" / "churn-prod.yaml").read_text()
    commit_doc("churn-prod.yaml", good.replace("replicas:", "replica:"), "typo")
    with pytest.raises(GitOpsError, match="is invalid"):
        set_traffic("churn-prod", {2: 100}, project=repo_project)
    rollback("churn-prod", project=repo_project)
    assert _doc(repo_project).spec.replicas == 1


def test_uncommitted_edits_are_never_overwritten(repo_project: Project, models: list[int]) -> None:
    promote("churn", to="churn-prod", project=repo_project)
    path = repo_project.dir / "deploy" / "churn-prod.yaml"
    path.write_text(path.read_text() + "# my note\n")
    with pytest.raises(GitOpsError, match="uncommitted changes"):
        set_traffic("churn-prod", {2: 50, 3: 50}, project=repo_project)
    assert path.read_text().endswith("# my note\n")
