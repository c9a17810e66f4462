"""Render every deployment of a revision as Kubernetes manifests: plain YAML, the server
image pinned to this opsloop's version, tokens and store URLs read from Secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
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

__all__ = ["DEFAULT_IMAGE", "DEFAULT_STORE_SECRET", "RenderResult", "render_deployments"]


@dataclass
class RenderResult:
    """Files written, and the deployments that could not be rendered (name → reason)."""

    revision: str
    files: dict[str, Path] = field(default_factory=dict)
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
) -> RenderResult:
    """Write ``<out_dir>/<deployment>.yaml`` (a Deployment and a Service) per deployment.

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
    """
    if project is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where it
        # is used, so importing this module stays light.
        from opsloop.context import current_project  # noqa: PLC0415

        project = current_project()
    repo = GitRepo(project.dir)
    desired = load_desired_state(repo, repo.relpath(project.dir / folder), revision=revision)
    result = RenderResult(revision=desired.revision)
    for problem in desired.problems:
        result.problems[problem.name or problem.file] = problem.message
    for name, loaded in sorted(desired.documents.items()):
        try:
            spec = resolve_spec(loaded.document, project.store)
        except OpsloopError as exc:
            result.problems[name] = f"{loaded.file}: {exc}"
            continue
        try:
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
        result.files[name] = write_manifests(manifests, Path(out_dir) / f"{name}.yaml")
    return result
