"""How the loop controller builds its remediation engine."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsloop.context import Project, open_project
from opsloop.errors import AIOpsError
from opsloop.loop.controller import Controller

SPEC = """project: demo
remediation:
  policies:
    - name: errors
      on: {{kinds: [error_rate]}}
      actions: [{actions}]
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "proj"
    folder.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    return folder


@contextmanager
def _project(folder: Path, actions: str) -> Iterator[Project]:
    (folder / "opsloop.yaml").write_text(SPEC.format(actions=actions))
    project = open_project(folder)
    try:
        yield project
    finally:
        project.close()


def test_a_policy_naming_an_unknown_action_stops_the_loop_from_starting(repo: Path) -> None:
    with _project(repo, "rollback, rollbak") as project:
        with pytest.raises(AIOpsError) as info:
            Controller(project, monitor_every_s=0)
        assert str(info.value).startswith(
            "policy 'errors': unknown remediation action 'rollbak'; known remediation actions: "
        )
        assert str(info.value).endswith("(did you mean 'rollback'?)")


def test_the_controller_starts_with_known_actions(repo: Path) -> None:
    with _project(repo, "rollback") as project:
        controller = Controller(project, monitor_every_s=0)
        engine = controller.engine({})
        assert [p.name for p in engine.policies] == ["errors"]
        assert engine.executor is controller.executor
