"""Render every deployment of a revision as Kubernetes manifests (plain YAML, or a Helm chart
of the same objects) and the Dockerfile of its server image: the image pinned to this
opsloop's version, tokens and store URLs read from Secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opsloop.errors import GitOpsError, OpsloopError
from opsloop.gitops.helm import chart_name, write_chart, write_chart_template
from opsloop.gitops.image import DEFAULT_BASE_IMAGE, model_requirements, render_dockerfile
from opsloop.gitops.loader import load_desired_state, resolve_spec
from opsloop.gitops.reconciler import DEFAULT_FOLDER
from opsloop.gitops.repo import GitRepo
from opsloop.gitops.runtime.kubernetes import (
    DEFAULT_IMAGE,
    DEFAULT_STORE_SECRET,
    render_manifests,
    write_manifests,
)

if TYPE_CHECKING:
    from opsloop.context import Project

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_IMAGE",
    "DEFAULT_STORE_SECRET",
    "TARGETS",
    "RenderResult",
    "render_deployments",
]

#: What ``render_deployments`` writes: plain manifests, or a Helm chart of them.
TARGETS = ("kubernetes", "helm")


@dataclass
class RenderResult:
    """Files written, and the deployments that could not be rendered (name → reason).

    Attributes:
        revision: The Git revision rendered.
        files: The manifests (or chart template) of each deployment.
        dockerfiles: The Dockerfile of each deployment's server image.
        chart: The Helm chart's folder (``target="helm"`` only).
        problems: Deployments not rendered, with the reason.
    """

    revision: str
    files: dict[str, Path] = field(default_factory=dict)
    dockerfiles: dict[str, Path] = field(default_factory=dict)
    chart: Path | None = None
    problems: dict[str, str] = field(default_factory=dict)


def render_deployments(
    out_dir: Path,
    *,
    project: Project | None = None,
    revision: str | None = "HEAD",
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    folder: str = DEFAULT_FOLDER,
    token_secret: str | None = None,
    store_secret: str = DEFAULT_STORE_SECRET,
    target: Literal["kubernetes", "helm"] = "kubernetes",
    base_image: str = DEFAULT_BASE_IMAGE,
) -> RenderResult:
    """Write the objects of every deployment and the Dockerfile of its server image.

    With ``target="kubernetes"``: ``<out_dir>/<deployment>.yaml`` (a Deployment, a Service
    and a NetworkPolicy). With ``target="helm"``: a chart ``<out_dir>/<project>-servers/``
    (``Chart.yaml``, ``values.yaml`` with the image, ``templates/<deployment>.yaml``). Both
    write ``<out_dir>/<deployment>.Dockerfile``.

    Aliases are resolved now, as a sync would. A deployment whose document is invalid or
    whose version is unknown is reported in ``problems``; the others are still written.

    Args:
        out_dir: Folder for the manifests.
        project: The project (default: the current one).
        revision: Git revision to read (None: the working tree).
        image: Container image with opsloop installed (default ``opsloop:<version>``).
        namespace: Namespace of the objects.
        env: Environment of the server containers (tokens are not taken here: the servers
            read them from a Secret, see
            :func:`~opsloop.gitops.runtime.kubernetes.render_manifests`).
        folder: Folder of the deployment documents, relative to the project.
        token_secret: Name of the Secret with the servers' tokens (default
            ``<deployment>-serve-tokens``).
        store_secret: Name of the Secret with the store URLs (keys ``store-url``,
            ``artifact-url`` and optionally ``s3-endpoint-url``).
        target: ``kubernetes`` (plain manifests) or ``helm`` (a chart).
        base_image: Python base image of the Dockerfiles (pinned).

    Raises:
        GitOpsError: Unknown target.
    """
    if target not in TARGETS:
        raise GitOpsError(f"unknown render target {target!r}; use {' or '.join(TARGETS)}")
    if project is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where it
        # is used, so importing this module stays light.
        from opsloop.context import current_project  # noqa: PLC0415

        project = current_project()
    repo = GitRepo(project.dir)
    desired = load_desired_state(repo, repo.relpath(project.dir / folder), revision=revision)
    result = RenderResult(revision=desired.revision)
    out_dir = Path(out_dir)
    if target == "helm":
        result.chart = out_dir / chart_name(project.name)
    for problem in desired.problems:
        result.problems[problem.name or problem.file] = problem.message
    for name, loaded in sorted(desired.documents.items()):
        try:
            spec = resolve_spec(loaded.document, project.store)
        except OpsloopError as exc:
            result.problems[name] = f"{loaded.file}: {exc}"
            continue
        try:
            details = {
                v: project.store.models.get_version(spec.model, v).details
                for v in sorted({*spec.traffic, *spec.shadow})
            }
            dockerfile = render_dockerfile(
                spec,
                model_requirements(spec, details),
                base_image=base_image,
                image=image,
                revision=desired.revision,
            )
            manifests = render_manifests(
                spec,
                image=image,
                namespace=namespace,
                env=env,
                revision=desired.revision,
                token_secret=token_secret,
                store_secret=store_secret,
            )
        except OpsloopError as exc:
            result.problems[name] = f"{loaded.file}: {exc}"
            continue
        if result.chart is not None:
            path = result.chart / "templates" / f"{name}.yaml"
            result.files[name] = write_chart_template(manifests, path)
        else:
            result.files[name] = write_manifests(manifests, out_dir / f"{name}.yaml")
        docker_path = out_dir / f"{name}.Dockerfile"
        docker_path.write_text(dockerfile, encoding="utf-8")
        result.dockerfiles[name] = docker_path
    if result.chart is not None and result.files:
        write_chart(result.chart, name=result.chart.name, image=image)
    return result
