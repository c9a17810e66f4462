"""The Dockerfile of a deployment's model-server image.

The image holds Python, opsloop pinned to the version that renders it, and the libraries the
served model versions were saved with (``details["package"]["library_versions"]`` of each
version), each pinned. Nothing is copied from the build context and no secret is passed at
build time (tokens and store URLs reach the container from Secrets at run time), so no layer
holds one. The server runs as the fixed non-root user of the manifests, with a HEALTHCHECK on
its liveness endpoint.

The base image is pinned by Python version and Debian release. It is not pinned by digest:
a digest can only be read from the registry, and rendering is offline; pass
``base_image="python:3.11.13-slim-bookworm@sha256:<digest>"`` to pin it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsloop import __version__
from opsloop.errors import GitOpsError
from opsloop.gitops.runtime.kubernetes import SERVER_GID, SERVER_HOME, SERVER_UID

if TYPE_CHECKING:
    from opsloop.gitops.types import RuntimeSpec

__all__ = ["DEFAULT_BASE_IMAGE", "model_requirements", "render_dockerfile"]

#: The base image: Python 3.11 (opsloop's oldest supported), slim, Debian 12, pinned patch.
DEFAULT_BASE_IMAGE = "python:3.11.13-slim-bookworm"
# A distribution name and an exact version (PEP 508 name, PEP 440 public version).
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")


def model_requirements(
    spec: RuntimeSpec, details: Mapping[int, Mapping[str, object]]
) -> dict[str, str]:
    """The pinned libraries (name → version) the versions a deployment serves need.

    Args:
        spec: The resolved deployment.
        details: The ``details`` of each version it serves (traffic and shadow), by version.

    Raises:
        GitOpsError: A served version's details are missing, or two versions need different
            versions of one library (one image cannot hold both).
    """
    out: dict[str, str] = {}
    source: dict[str, int] = {}
    for version in sorted({*spec.traffic, *spec.shadow}):
        if version not in details:
            raise GitOpsError(f"deployment '{spec.name}': no details of version {version}")
        package = details[version].get("package")
        libraries = package.get("library_versions") if isinstance(package, Mapping) else None
        for name, pinned in sorted((libraries or {}).items()):
            key = name.lower().replace("_", "-")
            if key in out and out[key] != pinned:
                raise GitOpsError(
                    f"deployment '{spec.name}': version {source[key]} needs {name}=={out[key]} "
                    f"but version {version} needs {name}=={pinned}; one image cannot serve both",
                    hint="serve versions saved with the same libraries in one deployment",
                )
            out[key], source[key] = str(pinned), version
    return out


def render_dockerfile(
    spec: RuntimeSpec,
    requirements: Mapping[str, str],
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    image: str | None = None,
    revision: str | None = None,
) -> str:
    """The Dockerfile of the server image of one deployment.

    Args:
        spec: The resolved deployment (its port and server arguments).
        requirements: Pinned libraries of the model (see :func:`model_requirements`).
        base_image: Python base image, pinned (never ``latest``).
        image: The image name the manifests use, shown in the build command.
        revision: The Git revision the deployment comes from, recorded in a comment.

    Raises:
        GitOpsError: The base image is unpinned or ``latest``, or a requirement is not a
            plain distribution name with an exact version.
    """
    _check_base(base_image)
    pins = [f"opsloop=={__version__}"]
    for name, version in sorted(requirements.items()):
        if not _NAME.match(name) or not _VERSION.match(version):
            raise GitOpsError(
                f"deployment '{spec.name}': requirement {name!r}=={version!r} is not a "
                "distribution name with an exact version"
            )
        if name.lower() != "opsloop":
            pins.append(f"{name}=={version}")
    args = ["serve", *spec.server_args("0.0.0.0", spec.port)]
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{spec.port}/v2/health/live', timeout=3)"
    )
    tag = image or "IMAGE"
    ends = [" \\"] * (len(pins) - 1) + [""]
    lines = [
        f"# Model server of deployment {spec.name}: {spec.model} "
        + ", ".join(f"v{v}" for v in sorted({*spec.traffic, *spec.shadow})),
        f"# Rendered by opsloop {__version__}"
        + (f" from revision {revision}" if revision else "")
        + "; nothing is copied from the build context.",
        f"# Build: docker build -f {spec.name}.Dockerfile -t {tag} .",
        f"FROM {base_image}",
        "",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
        f"    OPSLOOP_PROJECT_DIR={SERVER_HOME} \\",
        "    HOME=/tmp",
        "",
        f"RUN groupadd --system --gid {SERVER_GID} opsloop \\",
        f"    && useradd --system --uid {SERVER_UID} --gid {SERVER_GID} --no-create-home \\",
        f"       --home-dir {SERVER_HOME} --shell /usr/sbin/nologin opsloop",
        "",
        "# opsloop pinned to the version that rendered this file, and the model's libraries.",
        "RUN python -m pip install --no-cache-dir \\",
        *[f"    {shlex.quote(pin)}{cont}" for pin, cont in zip(pins, ends, strict=True)],
        "",
        f"WORKDIR {SERVER_HOME}",
        f"RUN mkdir -p {SERVER_HOME}/.opsloop && chown -R {SERVER_UID}:{SERVER_GID} {SERVER_HOME}",
        f"USER {SERVER_UID}:{SERVER_GID}",
        f"EXPOSE {spec.port}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', probe])}",
        'ENTRYPOINT ["opsloop"]',
        f"CMD {json.dumps(args)}",
    ]
    return "\n".join(lines) + "\n"


def _check_base(base_image: str) -> None:
    name = base_image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@sha256:" in base_image:
        return
    if not tag or tag == "latest":
        raise GitOpsError(
            f"base image {base_image!r} is not pinned: name a version tag (not 'latest') "
            "or a digest",
            hint=f"e.g. {DEFAULT_BASE_IMAGE}",
        )
