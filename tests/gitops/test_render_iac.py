"""What ``opsloop deploy render`` writes, as infrastructure as code: hardened Kubernetes
objects, the server image's Dockerfile and a Helm chart of the same objects, each valid and
passing checkov with zero failed checks (skips only in the files, with their reasons)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from opsloop import __version__
from opsloop.context import Project
from opsloop.errors import GitOpsError
from opsloop.gitops import RuntimeSpec, render_deployments
from opsloop.gitops.helm import IMAGE_VALUE
from opsloop.gitops.image import model_requirements, render_dockerfile
from opsloop.gitops.runtime.kubernetes import SERVER_UID, render_manifests
from opsloop.secops.iac import run_checkov
from tests.gitops.conftest import doc
from tests.gitops.test_cli import run

K8S_VERSION = "1.30"


def _spec(**kw: object) -> RuntimeSpec:
    data: dict[str, object] = {
        "name": "churn-prod",
        "model": "churn",
        "version": 3,
        "traffic": {3: 100.0},
        "port": 8601,
    }
    data.update(kw)
    return RuntimeSpec.model_validate(data)


def _quickstart_like(commit_doc: Callable[..., str]) -> None:
    """Two deployments as the quickstart has: one by alias with a canary, one plain."""
    commit_doc(
        "churn-prod.yaml",
        doc(
            "churn-prod",
            8601,
            extra="  traffic: [{version: 1, weight: 90}, {version: 2, weight: 10}]\n",
        ),
    )
    commit_doc("fraud.yaml", doc("fraud", 8602, model="fraud"))


def _helm_template(chart: Path, image: str) -> list[dict[str, Any]]:
    """What ``helm template`` renders from the chart, without helm: the one expression the
    templates hold is the image value; any other template expression is an error."""
    values = yaml.safe_load((chart / "values.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = template.read_text().replace(IMAGE_VALUE, image or values["image"])
        assert "{{" not in text, f"{template.name}: unexpected template expression"
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def test_objects_are_hardened() -> None:
    deployment, service, policy = render_manifests(_spec())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == SERVER_UID >= 10000
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == SERVER_UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Every path the server writes is an emptyDir: /tmp and the project's state folder.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/srv/opsloop/.opsloop": "state"}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == {"tmp", "state"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OPSLOOP_PROJECT_DIR"] == "/srv/opsloop"
    # Defaults when the document sets no resources; both probes.
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["readinessProbe"] and container["livenessProbe"]
    assert container["image"] == f"opsloop:{__version__}"
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8601, "protocol": "TCP"}]}]
    for manifest in (deployment, service, policy):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_a_lone_request_or_limit_is_used_for_both() -> None:
    spec = _spec(resources={"requests": {"memory": "2Gi"}, "limits": {"cpu": "2"}})
    deployment, *_ = render_manifests(spec)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }


def test_skips_are_written_with_their_reasons_and_only_when_needed() -> None:
    deployment, service, _ = render_manifests(_spec())
    skips = {
        v.split("=", 1)[0]: v.split("=", 1)[1]
        for k, v in deployment["metadata"]["annotations"].items()
        if k.startswith("checkov.io/skip")
    }
    assert set(skips) == {"CKV_K8S_35", "CKV_K8S_43", "CKV_K8S_21"}
    assert all(len(reason) > 40 for reason in skips.values())
    pinned = "registry.example/opsloop@sha256:" + "a" * 64
    deployment, service, _ = render_manifests(_spec(), namespace="ml", image=pinned)
    annotations = deployment["metadata"]["annotations"]
    assert [v.split("=")[0] for k, v in annotations.items() if k.startswith("checkov")] == [
        "CKV_K8S_35"
    ]
    assert "annotations" not in service["metadata"]


def test_dockerfile_pins_everything_and_runs_as_the_manifest_user() -> None:
    spec = _spec(traffic={3: 90.0, 4: 10.0})
    details = {
        3: {"package": {"library_versions": {"scikit-learn": "1.5.2", "numpy": "2.1.0"}}},
        4: {"package": {"library_versions": {"scikit-learn": "1.5.2", "pandas": "2.2.3"}}},
    }
    requirements = model_requirements(spec, details)
    assert requirements == {"scikit-learn": "1.5.2", "numpy": "2.1.0", "pandas": "2.2.3"}
    text = render_dockerfile(spec, requirements, image="opsloop:9")
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert f"opsloop=={__version__}" in text
    for pin in ("scikit-learn==1.5.2", "numpy==2.1.0", "pandas==2.2.3"):
        assert pin in text
    assert f"USER {SERVER_UID}:" in text and "HEALTHCHECK" in text
    assert "/v2/health/live" in text and "EXPOSE 8601" in text
    # Nothing from the build context, no build-time secrets.
    assert not re.search(r"^(COPY|ADD|ARG)\b", text, re.M)
    assert "latest" not in text and "TOKEN" not in text
    details[4]["package"]["library_versions"]["numpy"] = "1.26.4"
    with pytest.raises(GitOpsError, match=r"version 3 needs numpy==2\.1\.0 but version 4"):
        model_requirements(spec, details)
    with pytest.raises(GitOpsError, match="base image 'python:latest' is not pinned"):
        render_dockerfile(spec, {}, base_image="python:latest")
    with pytest.raises(GitOpsError, match="base image 'python' is not pinned"):
        render_dockerfile(spec, {}, base_image="python")
    with pytest.raises(GitOpsError, match="not a distribution name with an exact version"):
        render_dockerfile(spec, {"numpy": ">=1; rm -rf /"})


@pytest.mark.slow  # checkov, from a virtual environment made on first use
def test_render_writes_manifests_and_dockerfiles_checkov_passes(
    repo_project: Project,
    models: list[int],
    commit_doc: Callable[..., str],
    tmp_path: Path,
    checkov: Path,
) -> None:
    _quickstart_like(commit_doc)
    out = tmp_path / "out"
    result = render_deployments(out, project=repo_project)
    assert not result.problems and set(result.files) == {"churn-prod", "fraud"}
    assert sorted(p.name for p in out.iterdir()) == [
        "churn-prod.Dockerfile",
        "churn-prod.yaml",
        "fraud.Dockerfile",
        "fraud.yaml",
    ]
    for path in result.files.values():
        for manifest in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    # The model's libraries, as registered, are what the image installs.
    sklearn = repo_project.store.models.get_version("churn", 1).details["package"]
    pinned = sklearn["library_versions"]["scikit-learn"]
    assert f"scikit-learn=={pinned}" in result.dockerfiles["churn-prod"].read_text()
    scan = run_checkov(out, checkov=checkov)
    assert scan.failed == [] and scan.parsing_errors == [], scan.failed
    assert scan.passed_by_framework["kubernetes"] > 100
    assert scan.passed_by_framework["dockerfile"] > 50
    assert {f.framework for f in scan.skipped} == {"kubernetes"}
    assert all(f.reason for f in scan.skipped)


@pytest.mark.slow  # checkov, from a virtual environment made on first use
def test_render_helm_chart_of_the_same_objects_checkov_passes(
    repo_project: Project,
    models: list[int],
    commit_doc: Callable[..., str],
    tmp_path: Path,
    checkov: Path,
) -> None:
    _quickstart_like(commit_doc)
    plain = render_deployments(tmp_path / "plain", project=repo_project, image="reg/op:1.2")
    result = render_deployments(
        tmp_path / "helm", project=repo_project, image="reg/op:1.2", target="helm"
    )
    assert result.chart is not None and not result.problems
    chart = result.chart
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["version"] == meta["appVersion"] == __version__
    assert yaml.safe_load((chart / "values.yaml").read_text()) == {"image": "reg/op:1.2"}
    assert sorted(p.name for p in (chart / "templates").iterdir()) == [
        "churn-prod.yaml",
        "fraud.yaml",
    ]
    # The templates parse as YAML as they are, and render to the plain manifests.
    for template in (chart / "templates").glob("*.yaml"):
        assert all(yaml.safe_load_all(template.read_text()))
    rendered = _helm_template(chart, image="")
    expected = [d for p in sorted(plain.files.values()) for d in yaml.safe_load_all(p.read_text())]
    assert rendered == expected
    for manifest in _helm_template(chart, image="reg/op@sha256:" + "b" * 64):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    if shutil.which("helm"):
        subprocess.run(["helm", "lint", str(chart)], check=True)
        subprocess.run(["helm", "template", str(chart)], check=True, capture_output=True)
    scan = run_checkov(tmp_path / "helm", checkov=checkov)
    assert scan.failed == [] and scan.parsing_errors == [], scan.failed
    # checkov reads a chart through helm only; without helm, check what the chart renders.
    out = tmp_path / "helm-rendered"
    out.mkdir()
    (out / "chart.yaml").write_text(yaml.safe_dump_all(_helm_template(chart, image="")))
    scan = run_checkov(out, checkov=checkov)
    assert scan.failed == [] and scan.parsing_errors == [], scan.failed
    assert scan.passed > 100 and all(f.reason for f in scan.skipped)


def test_cli_render_helm(repo_project: Project, models: list[int], tmp_path: Path) -> None:
    run("deploy", "promote", "churn", "--to", "churn-prod", "--port", "8651")
    code, out = run("deploy", "render", "--target", "helm", "--out", str(tmp_path / "o"))
    assert code == 0, out
    assert "Helm chart" in out and "churn-prod.Dockerfile" in out
    chart = next((tmp_path / "o").glob("*/Chart.yaml")).parent
    assert (chart / "templates" / "churn-prod.yaml").is_file()
    with pytest.raises(GitOpsError, match="unknown render target 'nomad'; use kubernetes or helm"):
        render_deployments(tmp_path, project=repo_project, target="nomad")  # type: ignore[arg-type]
