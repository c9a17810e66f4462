"""A Helm chart of the rendered objects: the same manifests as ``--target kubernetes``, one
template per deployment, with the server image as the chart's one value.

The templates are the plain manifests with ``image: "{{ .Values.image }}"``; they stay valid
YAML before Helm renders them, so a YAML tool or an IaC scanner reads them as they are. The
namespace is the release's (``helm install -n``): no object names one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from opsloop import __version__
from opsloop.errors import GitOpsError
from opsloop.gitops.runtime.kubernetes import PlainDumper

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ["IMAGE_VALUE", "chart_name", "write_chart", "write_chart_template"]

#: The template expression of the server image.
IMAGE_VALUE = "{{ .Values.image }}"
_SENTINEL = "@@opsloop-image@@"


def chart_name(project_name: str) -> str:
    """A chart name from a project name: lower case letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9-]+", "-", project_name.lower()).strip("-")
    return f"{name or 'opsloop'}-servers"[:53].rstrip("-")


def write_chart(
    chart_dir: Path,
    *,
    name: str,
    image: str,
    description: str = "opsloop model servers",
) -> dict[str, Path]:
    """Write ``Chart.yaml`` and ``values.yaml`` of the chart (templates come separately).

    Raises:
        GitOpsError: ``name`` is not a valid chart name.
    """
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name):
        raise GitOpsError(f"chart name {name!r}: use lower case letters, digits and dashes")
    chart_dir.mkdir(parents=True, exist_ok=True)
    (chart_dir / "templates").mkdir(exist_ok=True)
    chart = {
        "apiVersion": "v2",
        "name": name,
        "description": description,
        "type": "application",
        # The chart is versioned with the opsloop that renders it, as the image is.
        "version": __version__,
        "appVersion": __version__,
    }
    values = {"image": image}
    files = {"Chart.yaml": chart, "values.yaml": values}
    out: dict[str, Path] = {}
    for file, data in files.items():
        path = chart_dir / file
        header = "# The server image (pinned: a version tag or a digest, never latest).\n"
        text = yaml.dump(data, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
        path.write_text((header if file == "values.yaml" else "") + text, encoding="utf-8")
        out[file] = path
    return out


def write_chart_template(manifests: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write one deployment's manifests as a chart template: the container image becomes
    ``{{ .Values.image }}``, everything else is written as rendered.

    Raises:
        GitOpsError: The manifests hold no server container.
    """
    docs = [dict(m) for m in manifests]
    found = 0
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        spec = dict(doc["spec"])
        template = dict(spec["template"])
        pod = dict(template["spec"])
        pod["containers"] = [{**c, "image": _SENTINEL} for c in pod["containers"]]
        found += len(pod["containers"])
        template["spec"] = pod
        spec["template"] = template
        doc["spec"] = spec
    if not found:
        raise GitOpsError(f"{path.name}: no server container to template")
    text = yaml.dump_all(docs, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
    text = text.replace(f"'{_SENTINEL}'", f'"{IMAGE_VALUE}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
