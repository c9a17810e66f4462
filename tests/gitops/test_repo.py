"""Git operations through the git command, on real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.errors import GitOpsError
from opsloop.gitops.repo import GitRepo, author_for
from tests.gitops.conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / "deploy" / "a.yaml").write_text("a: 1\n")
    (root / "README").write_text("hello\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return GitRepo(root / "deploy")


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitOpsError, match="not inside a Git repository"):
        GitRepo(tmp_path)


def test_read_and_list_at_revisions(repo: GitRepo) -> None:
    first = repo.resolve("HEAD")
    repo.commit_file("deploy/b.yaml", b"b: 2\n", "add b", actor="alice")
    assert repo.list_files("HEAD", "deploy") == ["deploy/a.yaml", "deploy/b.yaml"]
    assert repo.list_files(first, "deploy") == ["deploy/a.yaml"]
    assert repo.read(first, "deploy/b.yaml") is None
    assert repo.read("HEAD", "deploy/b.yaml") == b"b: 2\n"
    with pytest.raises(GitOpsError, match="unknown Git revision 'nope'"):
        repo.resolve("nope")


def test_commit_file_commits_only_that_file(repo: GitRepo) -> None:
    (repo.root / "README").write_text("changed\n")
    git(repo.root, "add", "README")  # staged by the user: must stay staged, uncommitted
    sha = repo.commit_file("deploy/a.yaml", b"a: 2\n", "deploy(a): bump", actor="alice")
    assert sha is not None
    assert repo.changed_paths(sha) == ["deploy/a.yaml"]
    assert git(repo.root, "diff", "--cached", "--name-only") == "README"
    author = git(repo.root, "log", "-1", "--format=%an <%ae>|%s")
    name, email = author_for("alice")
    assert author == f"{name} <{email}>|deploy(a): bump"
    assert name == "opsloop (alice)"


def test_commit_file_same_content_is_no_commit(repo: GitRepo) -> None:
    head = repo.resolve()
    assert repo.commit_file("deploy/a.yaml", b"a: 1\n", "noop", actor="a") is None
    assert repo.resolve() == head


def test_uncommitted_changes_are_refused(repo: GitRepo) -> None:
    (repo.root / "deploy" / "a.yaml").write_text("a: local edit\n")
    with pytest.raises(GitOpsError, match=r"deploy/a.yaml has uncommitted changes"):
        repo.commit_file("deploy/a.yaml", b"a: 3\n", "x", actor="a")
    assert (repo.root / "deploy" / "a.yaml").read_text() == "a: local edit\n"


def test_delete_file(repo: GitRepo) -> None:
    sha = repo.commit_file("deploy/a.yaml", None, "remove a", actor="a")
    assert sha is not None and repo.read("HEAD", "deploy/a.yaml") is None
    assert not (repo.root / "deploy" / "a.yaml").exists()


def test_revert_with_git_revert(repo: GitRepo) -> None:
    change = repo.commit_file("deploy/a.yaml", b"a: 2\n", "bump a", actor="a")
    assert change is not None
    sha = repo.revert(change, actor="bob", paths=["deploy/a.yaml"])
    assert repo.read(sha, "deploy/a.yaml") == b"a: 1\n"
    subject = git(repo.root, "log", "-1", "--format=%s%n%b")
    assert subject.startswith('Revert "bump a"')
    assert f"This reverts commit {change}" in subject


def test_revert_of_a_shared_commit_touches_only_the_paths(repo: GitRepo) -> None:
    (repo.root / "deploy" / "a.yaml").write_text("a: 2\n")
    (repo.root / "README").write_text("v2\n")
    git(repo.root, "commit", "-q", "-am", "both")
    both = repo.resolve()
    sha = repo.revert(both, actor="bob", paths=["deploy/a.yaml"])
    assert repo.read(sha, "deploy/a.yaml") == b"a: 1\n"
    assert repo.read(sha, "README") == b"v2\n"
    assert repo.changed_paths(sha) == ["deploy/a.yaml"]


def test_revert_of_the_commit_that_created_a_file_removes_it(repo: GitRepo) -> None:
    created = repo.commit_file("deploy/b.yaml", b"b: 1\n", "add b", actor="a")
    assert created is not None
    sha = repo.revert(created, actor="a", paths=["deploy/b.yaml"])
    assert repo.read(sha, "deploy/b.yaml") is None


def test_log_of_a_path(repo: GitRepo) -> None:
    repo.commit_file("deploy/b.yaml", b"b: 1\n", "add b", actor="a")
    repo.commit_file("deploy/a.yaml", b"a: 9\n", "bump a", actor="carol")
    log = repo.log("deploy/a.yaml")
    assert [c.subject for c in log] == ["bump a", "first"]
    assert log[0].author == "opsloop (carol)"
    assert len(log[0].short) == 10
    assert repo.relpath(repo.root / "deploy" / "a.yaml") == "deploy/a.yaml"
