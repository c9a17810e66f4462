"""Reading desired state at a revision or from the working tree; resolving specs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opsloop.context import Project
from opsloop.errors import NotFoundError
from opsloop.gitops.document import parse_document
from opsloop.gitops.loader import WORKING_TREE, load_desired_state, resolve_spec
from opsloop.gitops.repo import GitRepo
from tests.gitops.conftest import doc


def test_one_invalid_document_does_not_stop_the_others(
    repo_project: Project, commit_doc: Callable[..., str]
) -> None:
    commit_doc("a.yaml", doc("a", 8601))
    commit_doc("sub/b.yml", doc("b", 8602))
    commit_doc("c.yaml", doc("c", 8603).replace("port:", "prot:"))
    commit_doc("d.yaml", ": : not yaml [\n")
    commit_doc("notes.txt", "ignored\n")
    state = load_desired_state(GitRepo(repo_project.dir), "deploy")
    assert sorted(state.documents) == ["a", "b"]
    assert state.documents["b"].file == "deploy/sub/b.yml"
    problems = {p.file: p for p in state.problems}
    assert set(problems) == {"deploy/c.yaml", "deploy/d.yaml"}
    assert problems["deploy/c.yaml"].name == "c"
    message = problems["deploy/c.yaml"].message
    assert message.startswith("deploy/c.yaml:5: field 'spec.port': required field is missing")
    assert "spec.prot (line 8): unknown field" in message
    assert problems["deploy/d.yaml"].name is None
    assert problems["deploy/d.yaml"].error.line == 1


def test_revision_and_working_tree(repo_project: Project, commit_doc: Callable[..., str]) -> None:
    first = commit_doc("a.yaml", doc("a", 8601, version=1))
    commit_doc("a.yaml", doc("a", 8601, version=2))
    (repo_project.dir / "deploy" / "a.yaml").write_text(doc("a", 8601, version=3))
    repo = GitRepo(repo_project.dir)
    assert load_desired_state(repo, revision=first).documents["a"].document.spec.version == 1
    at_head = load_desired_state(repo)
    assert at_head.documents["a"].document.spec.version == 2
    assert at_head.revision == repo.resolve("HEAD")
    tree = load_desired_state(repo, revision=None)
    assert tree.revision == WORKING_TREE
    assert tree.documents["a"].document.spec.version == 3


def test_duplicate_names_mark_both(repo_project: Project, commit_doc: Callable[..., str]) -> None:
    commit_doc("a.yaml", doc("same", 8601))
    commit_doc("b.yaml", doc("same", 8602))
    state = load_desired_state(GitRepo(repo_project.dir))
    assert state.documents == {}
    assert [p.name for p in state.problems] == ["same", "same"]
    assert "defined more than once (deploy/a.yaml, deploy/b.yaml)" in state.problems[0].message


def test_other_kinds_are_left_to_their_readers(
    repo_project: Project, commit_doc: Callable[..., str]
) -> None:
    commit_doc("policy.yaml", "apiVersion: opsloop/v1\nkind: MonitoringPolicy\nmetadata: {}\n")
    state = load_desired_state(GitRepo(repo_project.dir))
    assert state.documents == {} and state.problems == []


def test_missing_folder_is_empty(repo_project: Project) -> None:
    state = load_desired_state(GitRepo(repo_project.dir), "deploy")
    assert state.documents == {} and state.problems == []


def test_resolve_spec_alias_and_split(repo_project: Project, models: list[int]) -> None:
    text = doc("a", 8601).replace("  version: 1\n", "  alias: champion\n")
    spec = resolve_spec(parse_document(text, "a.yaml"), repo_project.store)
    assert (spec.version, spec.alias, spec.traffic) == (2, "champion", {2: 100.0})
    extra = "  traffic: [{version: 1, weight: 80}, {version: 3, weight: 20}]\n  shadow: [2]\n"
    spec = resolve_spec(parse_document(doc("a", 8601, extra=extra), "a.yaml"), repo_project.store)
    assert spec.versions == [1, 2, 3]
    assert spec.model_uris()[0] == "models:/churn/1"
    assert spec.spec_hash().startswith("sha256:")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("  version: 1\n", "  version: 9\n"), "spec.version"),
        (("  version: 1\n", "  alias: nobody\n"), "spec.alias"),
        (("  port", "  shadow: [7]\n  port"), "spec.shadow"),
    ],
)
def test_resolve_spec_unknown_versions(
    repo_project: Project, models: list[int], change: tuple[str, str], where: str
) -> None:
    text = doc("a", 8601).replace(*change)
    with pytest.raises(NotFoundError, match=where):
        resolve_spec(parse_document(text, "a.yaml"), repo_project.store)
