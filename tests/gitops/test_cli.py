"""The gitops commands, mounted as the opsloop CLI mounts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from opsloop import __version__
from opsloop.cli._common import console
from opsloop.cli.gitops import deploy_app, rollback, status, sync
from opsloop.context import Project
from opsloop.errors import GitOpsError
from tests.gitops.conftest import git

app = typer.Typer()
app.add_typer(deploy_app, name="deploy")
app.command("sync")(sync)
app.command("rollback")(rollback)
app.command("status")(status)

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    """Tables wide enough that no cell is cut."""
    before = console.width
    console.width = 240
    try:
        yield
    finally:
        console.width = before


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False, terminal_width=200)
    return result.exit_code, result.output


def test_promote_traffic_sync_history_rollback(
    repo_project: Project, models: list[int], tmp_path: Path
) -> None:
    code, out = run("deploy", "promote", "churn", "--to", "churn-prod", "--port", "8650")
    assert code == 0, out
    assert "committed" in out and "deploy churn v2 (@champion) to churn-prod" in out
    code, out = run("deploy", "set-traffic", "churn-prod", "2=90", "3=10")
    assert code == 0 and "set churn-prod traffic to v2 90%, v3 10% (was v2)" in out

    code, out = run("status")
    assert code == 0
    assert "churn-prod" in out and "OutOfSync" in out and "Missing" in out
    # The split, not just the main version.
    assert "v2 90%, v3 10%" in out

    code, out = run("sync", "--dry-run", "--runtime", "kubernetes")
    assert code == 0 and "dry run at" in out and "OutOfSync" in out
    assert "churn-prod not running → running" in out
    code, out = run("sync", "--runtime", "kubernetes")
    assert code == 0, out
    assert "Synced" in out and "churn-prod" in out
    assert "synced: not running → running" in out
    manifest = repo_project.state_dir / "runtime" / "kubernetes" / "churn-prod.yaml"
    assert manifest.is_file()

    code, out = run("deploy", "set-traffic", "churn-prod", "2=50", "3=50")
    assert code == 0, out
    code, out = run("sync", "--runtime", "kubernetes")
    assert code == 0, out
    assert "churn-prod traffic: v2 90%, v3 10% → v2 50%, v3 50%" in out
    # Words, never Python reprs.
    for text in ("None", "{'", "{2:", "[2, 3]"):
        assert text not in out, text

    code, out = run("deploy", "history", "churn-prod")
    assert code == 0 and "Succeeded" in out and "v2" in out
    assert "not running → running" in out and "v2 90%, v3 10% → v2 50%, v3 50%" in out
    code, out = run("deploy", "history", "churn-prod", "--commits")
    assert code == 0 and "set churn-prod traffic to v2 90%, v3 10%" in out
    assert "deploy churn v2 (@champion) to churn-prod" in out

    code, out = run("rollback", "churn-prod")
    assert code == 0
    assert 'Revert "set churn-prod traffic to v2 50%, v3 50% (was v2 90%, v3 10%)"' in out
    assert git(repo_project.dir, "log", "-1", "--format=%s").startswith("Revert")


def test_render(repo_project: Project, models: list[int], tmp_path: Path) -> None:
    run("deploy", "promote", "churn", "--to", "churn-prod", "--port", "8651")
    out_dir = tmp_path / "out"
    code, out = run("deploy", "render", "--out", str(out_dir), "--image", "img:3", "--env", "A=1")
    assert code == 0, out
    assert "wrote" in out
    docs = list(yaml.safe_load_all((out_dir / "churn-prod.yaml").read_text()))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "img:3" and container["env"][0] == {"name": "A", "value": "1"}
    code, out = run("deploy", "render", "--out", str(out_dir), "--store-secret", "stores")
    assert code == 0, out
    text = (out_dir / "churn-prod.yaml").read_text()
    container = next(yaml.safe_load_all(text))["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"opsloop:{__version__}" and "&id" not in text
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["OPSLOOP_STORE_URL"] == {"name": "stores", "key": "store-url"}
    with pytest.raises(GitOpsError, match="unknown render target"):
        run("deploy", "render", "--target", "nomad")
    with pytest.raises(GitOpsError, match="expected KEY=VALUE"):
        run("deploy", "render", "--env", "oops")


def test_sync_exits_1_on_a_degraded_deployment(repo_project: Project, models: list[int]) -> None:
    path = repo_project.dir / "deploy" / "bad.yaml"
    path.parent.mkdir()
    path.write_text("apiVersion: opsloop/v1\nkind: Deployment\nmetadata: {name: bad}\nspec: {}\n")
    git(repo_project.dir, "add", "-A")
    git(repo_project.dir, "commit", "-q", "-m", "bad")
    code, out = run("sync", "--runtime", "kubernetes")
    assert code == 1
    assert "Degraded" in out and "deploy/bad.yaml" in out


def test_status_with_nothing(repo_project: Project) -> None:
    code, out = run("status")
    assert code == 0 and "no deployments in deploy/" in out
