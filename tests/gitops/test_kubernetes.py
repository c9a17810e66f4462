"""Kubernetes manifests: valid apps/v1 Deployment and v1 Service (checked against the
Kubernetes OpenAPI schemas, offline), tokens wired from a Secret, and the renderer as a
runtime."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

import opsloop
from opsloop.context import Project
from opsloop.errors import GitOpsError
from opsloop.gitops import Reconciler, RuntimeSpec, render_deployments
from opsloop.gitops.runtime.kubernetes import (
    KubernetesRuntime,
    render_manifests,
    write_manifests,
)
from opsloop.gitops.types import HealthStatus, LiveDeployment
from opsloop.serve.auth import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, SERVE_TOKEN_ENV
from tests.gitops.conftest import doc

K8S_VERSION = "1.30"


def _validate(manifest: dict[str, object]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def _spec(**kw: object) -> RuntimeSpec:
    data: dict[str, object] = {
        "name": "churn-prod",
        "model": "churn",
        "version": 3,
        "traffic": {3: 90.0, 4: 10.0},
        "shadow": [5],
        "replicas": 2,
        "port": 8601,
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "labels": {"team": "growth"},
    }
    data.update(kw)
    return RuntimeSpec.model_validate(data)


def test_manifests_are_valid_kubernetes_objects() -> None:
    deployment, service, policy = render_manifests(
        _spec(), image="registry.example/opsloop:1.0", namespace="ml", env={"OPSLOOP_X": "1"}
    )
    _validate(deployment)
    _validate(service)
    _validate(policy)
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == "registry.example/opsloop:1.0"
    assert container["command"] == ["opsloop"]
    assert container["args"] == [
        "serve",
        "models:/churn/3",
        "models:/churn/4",
        "models:/churn/5",
        "--host",
        "0.0.0.0",
        "--port",
        "8601",
        "--deployment",
        "churn-prod",
        "--traffic",
        "churn=3:90,4:10",
        "--shadow",
        "churn=5",
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["env"] == [
        {"name": "OPSLOOP_X", "value": "1"},
        {"name": "OPSLOOP_PROJECT_DIR", "value": "/srv/opsloop"},
        {"name": "HOME", "value": "/tmp"},
        {
            "name": "OPSLOOP_SERVE_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "churn-prod-serve-tokens", "key": "token"}},
        },
        {
            "name": "OPSLOOP_FEEDBACK_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "churn-prod-serve-tokens",
                    "key": "feedback-token",
                    "optional": True,
                }
            },
        },
        {
            "name": "OPSLOOP_ADMIN_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "churn-prod-serve-tokens",
                    "key": "admin-token",
                    "optional": True,
                }
            },
        },
        {
            "name": "OPSLOOP_STORE_URL",
            "valueFrom": {"secretKeyRef": {"name": "opsloop-store", "key": "store-url"}},
        },
        {
            "name": "OPSLOOP_ARTIFACT_URL",
            "valueFrom": {"secretKeyRef": {"name": "opsloop-store", "key": "artifact-url"}},
        },
        {
            "name": "OPSLOOP_S3_ENDPOINT_URL",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "opsloop-store",
                    "key": "s3-endpoint-url",
                    "optional": True,
                }
            },
        },
    ]
    assert deployment["spec"]["replicas"] == 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert deployment["metadata"]["labels"]["team"] == "growth"
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "ml"
    assert service["spec"]["ports"][0]["port"] == 8601


def _token_env(container: dict) -> dict[str, dict]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "valueFrom" in e and e["name"] in (SERVE_TOKEN_ENV, FEEDBACK_TOKEN_ENV, ADMIN_TOKEN_ENV)
    }


def _store_env(container: dict) -> dict[str, dict]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "valueFrom" in e
        and e["name"] not in (SERVE_TOKEN_ENV, FEEDBACK_TOKEN_ENV, ADMIN_TOKEN_ENV)
    }


def test_store_urls_come_from_a_secret_by_default() -> None:
    deployment, *_ = render_manifests(_spec(), store_secret="ml-stores")
    _validate(deployment)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    refs = _store_env(container)
    assert refs == {
        "OPSLOOP_STORE_URL": {"name": "ml-stores", "key": "store-url"},
        "OPSLOOP_ARTIFACT_URL": {"name": "ml-stores", "key": "artifact-url"},
        "OPSLOOP_S3_ENDPOINT_URL": {
            "name": "ml-stores",
            "key": "s3-endpoint-url",
            "optional": True,
        },
    }
    # A URL without a credential may be set in the manifest instead of read from the Secret.
    deployment, *_ = render_manifests(_spec(), env={"OPSLOOP_ARTIFACT_URL": "s3://bucket/ml"})
    _validate(deployment)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert names.count("OPSLOOP_ARTIFACT_URL") == 1
    assert {"name": "OPSLOOP_ARTIFACT_URL", "value": "s3://bucket/ml"} in container["env"]
    assert "OPSLOOP_STORE_URL" in _store_env(container)
    with pytest.raises(GitOpsError, match="env sets OPSLOOP_STORE_URL with a credential"):
        render_manifests(_spec(), env={"OPSLOOP_STORE_URL": "postgresql://ml:s3cret@db/opsloop"})


def test_manifests_are_plain_yaml_with_a_pinned_image(tmp_path: Path) -> None:
    path = write_manifests(render_manifests(_spec()), tmp_path / "m.yaml")
    text = path.read_text()
    # The labels and selector dicts are shared in memory; the file repeats them.
    assert "&id" not in text and "*id" not in text
    assert re.search(r"^\s*image: opsloop:" + re.escape(opsloop.__version__) + "$", text, re.M)
    assert "latest" not in text
    docs = list(yaml.safe_load_all(text))
    assert docs[0]["metadata"]["labels"] == docs[1]["metadata"]["labels"]
    for d in docs:
        _validate(d)


def test_tokens_come_from_a_secret_never_from_the_manifest() -> None:
    deployment, *_ = render_manifests(_spec(), token_secret="shared-tokens")
    _validate(deployment)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    refs = _token_env(container)
    # The names the server reads (the serving package's constants) are the names wired.
    assert set(refs) == {SERVE_TOKEN_ENV, FEEDBACK_TOKEN_ENV, ADMIN_TOKEN_ENV}
    assert refs[SERVE_TOKEN_ENV] == {"name": "shared-tokens", "key": "token"}
    assert refs[ADMIN_TOKEN_ENV]["optional"] is True
    assert refs[FEEDBACK_TOKEN_ENV]["optional"] is True
    # The deployment document names its Secret (spec.auth.secret); an explicit one still wins.
    named = _spec(token_secret="churn-tokens")
    [own] = render_manifests(named)[0]["spec"]["template"]["spec"]["containers"]
    assert {r["name"] for r in _token_env(own).values()} == {"churn-tokens"}
    [shared] = render_manifests(named, token_secret="shared-tokens")[0]["spec"]["template"]["spec"][
        "containers"
    ]
    assert {r["name"] for r in _token_env(shared).values()} == {"shared-tokens"}
    assert all("value" not in e for e in container["env"] if e["name"] in refs)
    with pytest.raises(GitOpsError, match="env sets OPSLOOP_SERVE_TOKEN, which would put a token"):
        render_manifests(_spec(), env={SERVE_TOKEN_ENV: "s3cret"})


def test_the_server_reads_the_token_the_manifest_wires(tmp_path: Path) -> None:
    deployment, *_ = render_manifests(_spec())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    # As the kubelet would: the Secret's keys become the variables the manifest names.
    secret = {
        "token": "k8s-serve-token-0123456789",
        "feedback-token": "k8s-feedback-token-0123456789",
        "admin-token": "k8s-admin-token-0123456789",
    }
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name, ref in _token_env(container).items():
        env[name] = secret[ref["key"]]
    (tmp_path / "opsloop.yaml").write_text("project: k8s\n")
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
    host_args = container["args"][
        container["args"].index("--host") : container["args"].index("--port")
    ]
    assert host_args == ["--host", "0.0.0.0"]
    cmd = [
        sys.executable,
        "-m",
        "opsloop",
        "serve",
        "test:churn/1",
        *host_args,
        "--port",
        str(port),
    ]
    cmd += ["--loader", "tests.serve.models:load", "--prediction-log", "none"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        body = {"instances": [[30, 61.5, "paris", True]]}
        assert httpx.post(f"{url}/invocations", json=body).status_code == 401
        auth = {"authorization": f"Bearer {secret['token']}"}
        assert httpx.post(f"{url}/invocations", json=body, headers=auth).status_code == 200
        admin = {"authorization": f"Bearer {secret['admin-token']}"}
        assert httpx.get(f"{url}/v1/admin/models", headers=admin).status_code == 200
        assert httpx.get(f"{url}/v1/admin/models", headers=auth).status_code == 401
        # The feedback token reaches feedback (a label for an unknown request: 400, not 401)
        # and nothing else.
        labels = {"authorization": f"Bearer {secret['feedback-token']}"}
        assert httpx.post(f"{url}/invocations", json=body, headers=labels).status_code == 401
        label = {"request_id": "unknown-request", "label": 1}
        assert httpx.post(f"{url}/v1/feedback", json=label).status_code == 401
        assert httpx.post(f"{url}/v1/feedback", json=label, headers=labels).status_code != 401
        assert secret["token"] not in " ".join(cmd)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_validator_catches_a_broken_manifest() -> None:
    deployment, *_ = render_manifests(_spec())
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def test_minimal_spec_renders_valid_objects() -> None:
    for manifest in render_manifests(_spec(traffic={3: 100.0}, shadow=[], resources={}, labels={})):
        _validate(manifest)


def test_render_deployments_writes_a_file_per_deployment(
    repo_project: Project, models: list[int], commit_doc: Callable[..., str], tmp_path: Path
) -> None:
    commit_doc("a.yaml", doc("a", 8601, extra="  alias: champion\n").replace("  version: 1\n", ""))
    commit_doc("b.yaml", doc("b", 8602, version=8))
    out = tmp_path / "manifests"
    result = render_deployments(out, project=repo_project, image="img:1")
    assert set(result.files) == {"a"}
    assert "spec.version" in result.problems["b"]
    docs = list(yaml.safe_load_all((out / "a.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "NetworkPolicy"]
    for d in docs:
        _validate(d)
    # The alias was resolved when rendering: champion → v2.
    assert "models:/churn/2" in docs[0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_kubernetes_runtime_keeps_a_folder_in_step(
    repo_project: Project, models: list[int], commit_doc: Callable[..., str], tmp_path: Path
) -> None:
    out = tmp_path / "k8s"
    runtime = KubernetesRuntime(out, image="img:2")
    rec = Reconciler(repo_project, runtime=runtime)
    commit_doc("a.yaml", doc("a", 8601, extra="  syncPolicy: {prune: true}\n"))
    result = rec.sync()
    a = result.outcome("a")
    assert a.action == "synced" and a.health == HealthStatus.UNKNOWN
    assert (out / "a.yaml").is_file()
    assert rec.sync().outcome("a").action == "none"
    # A hand edit of the manifest is drift.
    path = out / "a.yaml"
    path.write_text(path.read_text().replace("replicas: 1", "replicas: 5"))
    assert rec.sync().outcome("a").diff == {"running": {"live": 5, "desired": 1}}
    commit_doc("a.yaml", None)
    assert rec.sync().outcome("a").action == "pruned"
    assert not path.exists()


def test_one_deployment_crashing_the_runtime_does_not_stop_the_others(
    repo_project: Project, models: list[int], commit_doc: Callable[..., str], tmp_path: Path
) -> None:
    class BrokenForB(KubernetesRuntime):
        def apply(self, name: str, desired: RuntimeSpec) -> LiveDeployment:
            if name == "b":
                raise RuntimeError("disk on fire")
            return super().apply(name, desired)

    commit_doc("a.yaml", doc("a", 8601))
    commit_doc("b.yaml", doc("b", 8602))
    commit_doc("c.yaml", doc("c", 8603))
    result = Reconciler(repo_project, runtime=BrokenForB(tmp_path / "k8s")).sync()
    b = result.outcome("b")
    assert b.action == "failed" and b.reason == "reconcile error: RuntimeError: disk on fire"
    assert [result.outcome(n).action for n in ("a", "c")] == ["synced", "synced"]
    assert not result.ok
