"""The ``kubernetes`` runtime: ``apps/v1 Deployment``, ``v1 Service`` and
``networking.k8s.io/v1 NetworkPolicy`` manifests per deployment, written into a folder.

The objects are hardened the way the CIS benchmark and checkov ask: a fixed non-root UID, a
read-only root filesystem (``emptyDir`` volumes for the paths the server writes), no privilege
escalation, every capability dropped, the runtime's default seccomp profile, no service
account token, resource requests and limits, readiness and liveness probes, and ingress only
to the server's port. A check the objects cannot meet is skipped in the manifest itself, with
its reason (``checkov.io/skip<N>`` annotations).

opsloop does not talk to a cluster. It renders manifests that a cluster-side GitOps tool (or
``kubectl apply -f``) applies; the cluster then owns health. As a runtime, ``apply`` writes a
deployment's manifests, ``stop`` removes them and ``live_state`` reads them back, so
``opsloop sync --runtime kubernetes`` keeps a folder of manifests in step with Git.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from opsloop import __version__
from opsloop.errors import GitOpsError, SpecError
from opsloop.gitops.runtime.base import Runtime
from opsloop.gitops.types import (
    SERVER_TOKEN_ENV,
    Health,
    HealthStatus,
    LiveDeployment,
    RuntimeSpec,
)
from opsloop.redact import url_secrets
from opsloop.spec.yamlpos import load_yaml_all, read_text

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_RESOURCES",
    "DEFAULT_STORE_SECRET",
    "SERVER_GID",
    "SERVER_HOME",
    "SERVER_UID",
    "KubernetesRuntime",
    "PlainDumper",
    "render_manifests",
    "write_manifests",
]

#: The server image: pinned to this opsloop's version, so a manifest runs what rendered it.
DEFAULT_IMAGE = f"opsloop:{__version__}"
#: The Secret the servers read the metadata store's and artifact store's URLs from.
DEFAULT_STORE_SECRET = "opsloop-store"
#: The fixed non-root user and group the server runs as (above 10000, clear of host users).
SERVER_UID = 10001
SERVER_GID = 10001
#: The project folder inside the server container; its ``.opsloop`` (model cache, runtime
#: files) is a writable ``emptyDir``, as is ``/tmp``: the root filesystem is read-only.
SERVER_HOME = "/srv/opsloop"
#: Requests and limits of a deployment whose document sets none (per resource, a request or
#: limit set alone is used for both).
DEFAULT_RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
# The variables ``opsloop serve`` reads its tokens from.
SERVE_TOKEN_ENV = SERVER_TOKEN_ENV["token"]
FEEDBACK_TOKEN_ENV = SERVER_TOKEN_ENV["feedback_token"]
ADMIN_TOKEN_ENV = SERVER_TOKEN_ENV["admin_token"]
# Where every opsloop process reads its stores from (opsloop.settings), and the key of each
# in the store Secret; the S3 endpoint is optional (AWS without one).
STORE_ENV = {
    "OPSLOOP_STORE_URL": ("store-url", False),
    "OPSLOOP_ARTIFACT_URL": ("artifact-url", False),
    "OPSLOOP_S3_ENDPOINT_URL": ("s3-endpoint-url", True),
}


class PlainDumper(yaml.SafeDumper):
    """A YAML dumper that writes plain documents: the same dict used twice (labels,
    selectors) is written twice, never as an anchor (``&id001``) and an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


SPEC_ANNOTATION = "opsloop.io/spec"
HASH_ANNOTATION = "opsloop.io/spec-hash"


def _labels(spec: RuntimeSpec) -> tuple[dict[str, str], dict[str, str]]:
    selector = {
        "app.kubernetes.io/name": "opsloop-server",
        "app.kubernetes.io/instance": spec.name,
    }
    labels = {
        **spec.labels,
        **selector,
        "app.kubernetes.io/managed-by": "opsloop",
        "opsloop.io/model": spec.model,
        "opsloop.io/version": str(spec.version),
    }
    return selector, labels


def _resources(spec: RuntimeSpec) -> dict[str, dict[str, str]]:
    """The document's requests and limits, completed: a resource with neither gets the
    defaults, one with only a request or only a limit uses it for both (as Kubernetes does
    for a lone limit), so every container has both and a limit is never below its request."""
    given = {
        kind: {k: v for k, v in (spec.resources.get(kind) or {}).items() if v is not None}
        for kind in ("requests", "limits")
    }
    out: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    names = sorted({*given["requests"], *given["limits"], *DEFAULT_RESOURCES["requests"]})
    for name in names:
        request, limit = given["requests"].get(name), given["limits"].get(name)
        if request is None and limit is None:
            request = DEFAULT_RESOURCES["requests"].get(name)
            limit = DEFAULT_RESOURCES["limits"].get(name)
        request = request if request is not None else limit
        limit = limit if limit is not None else request
        if request is not None and limit is not None:
            out["requests"][name] = request
            out["limits"][name] = limit
    return out


def _skips(reasons: dict[str, str]) -> dict[str, str]:
    """checkov skip annotations: ``checkov.io/skip<N>: <check>=<reason>``."""
    return {
        f"checkov.io/skip{i}": f"{check}={why}" for i, (check, why) in enumerate(reasons.items(), 1)
    }


_NO_NAMESPACE = (
    "no namespace rendered: it is chosen when the manifests are applied "
    "(kubectl -n, or the GitOps tool's destination)"
)
_SECRETS_AS_ENV = (
    "opsloop serve reads its tokens and store URLs from environment variables; they come "
    "from Secrets created in the cluster, never from this manifest"
)
_NO_DIGEST = (
    "the image is pinned to the opsloop version by tag; its digest is known only once the "
    "rendered Dockerfile is built (pass --image NAME@sha256:... to pin it)"
)


def render_manifests(
    spec: RuntimeSpec,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    revision: str | None = None,
    token_secret: str | None = None,
    store_secret: str = DEFAULT_STORE_SECRET,
) -> list[dict[str, Any]]:
    """The ``Deployment``, ``Service`` and ``NetworkPolicy`` of one deployment.

    The server listens on every interface of its pod, so it needs a token: the container
    reads ``OPSLOOP_SERVE_TOKEN`` (key ``token``) and, when present, ``OPSLOOP_FEEDBACK_TOKEN``
    (key ``feedback-token``) and ``OPSLOOP_ADMIN_TOKEN`` (key ``admin-token``) from a Secret
    (the document's ``spec.auth.secret``) that is created in the cluster, never rendered here
    (manifests live in Git). The metadata store's and artifact store's URLs (which hold
    credentials) come from another Secret likewise: ``OPSLOOP_STORE_URL`` (key
    ``store-url``), ``OPSLOOP_ARTIFACT_URL`` (``artifact-url``) and, when present,
    ``OPSLOOP_S3_ENDPOINT_URL`` (``s3-endpoint-url``); ``env`` may set one of them instead,
    if it holds no password.

    Args:
        spec: The resolved deployment.
        image: Container image with opsloop installed (its entry point does not matter: the
            command is set).
        namespace: Namespace of both objects (none: the one ``kubectl`` uses).
        env: Environment variables of the server container (store and artifact URLs …).
        revision: The Git revision the spec comes from, recorded as an annotation.
        token_secret: Name of the Secret holding the tokens (default the document's
            ``spec.auth.secret``, else ``<deployment>-serve-tokens``).
        store_secret: Name of the Secret holding the store URLs.

    Returns:
        Three manifests, as plain data.

    Raises:
        GitOpsError: ``env`` sets a token variable (a token must come from the Secret), or a
            store URL with a password or credential in it.
    """
    secret_env = {
        SERVE_TOKEN_ENV: ("token", False),
        FEEDBACK_TOKEN_ENV: ("feedback-token", True),
        ADMIN_TOKEN_ENV: ("admin-token", True),
    }
    clash = sorted(set(env or {}) & set(secret_env))
    if clash:
        raise GitOpsError(
            f"deployment '{spec.name}': env sets {', '.join(clash)}, which would put a token "
            "into a manifest in Git",
            hint="put the tokens in the Secret the manifest names (token, admin-token)",
        )
    for name in sorted(set(env or {}) & set(STORE_ENV)):
        if url_secrets((env or {})[name]):
            raise GitOpsError(
                f"deployment '{spec.name}': env sets {name} with a credential in it, which "
                "would put it into a manifest in Git",
                hint=f"leave {name} out of env: the server reads it from the Secret "
                f"'{store_secret}' (key {STORE_ENV[name][0]})",
            )
    secret = token_secret or spec.token_secret or f"{spec.name}-serve-tokens"
    selector, labels = _labels(spec)
    # Inside a pod the server must listen on every interface for the Service to reach it.
    args = ["serve", *spec.server_args("0.0.0.0", spec.port)]
    annotations = {
        HASH_ANNOTATION: spec.spec_hash(),
        SPEC_ANNOTATION: spec.model_dump_json(),
    }
    if revision:
        annotations["opsloop.io/revision"] = revision
    skipped = {"CKV_K8S_35": _SECRETS_AS_ENV}
    if "@sha256:" not in image:
        skipped["CKV_K8S_43"] = _NO_DIGEST
    if not namespace:
        skipped["CKV_K8S_21"] = _NO_NAMESPACE
    annotations.update(_skips(skipped))
    meta: dict[str, Any] = {"name": spec.name, "labels": labels, "annotations": annotations}
    if namespace:
        meta["namespace"] = namespace
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "Always",
        "command": ["opsloop"],
        "args": args,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
    }
    container["resources"] = _resources(spec)
    container["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": SERVER_UID,
        "runAsGroup": SERVER_GID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container["volumeMounts"] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "state", "mountPath": f"{SERVER_HOME}/.opsloop"},
    ]
    # Where the server finds its project (the state folder is the emptyDir above) and a
    # writable home for libraries that cache under it.
    defaults = {"OPSLOOP_PROJECT_DIR": SERVER_HOME, "HOME": "/tmp"}
    container["env"] = (
        [{"name": k, "value": v} for k, v in sorted((env or {}).items())]
        + [{"name": k, "value": v} for k, v in defaults.items() if k not in (env or {})]
        + [_secret_ref(name, secret, key, optional) for name, (key, optional) in secret_env.items()]
        + [
            _secret_ref(name, store_secret, key, optional)
            for name, (key, optional) in STORE_ENV.items()
            if name not in (env or {})
        ]
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                # Zero downtime: a new pod must be ready before an old one goes.
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.port),
                        "prometheus.io/path": "/metrics",
                        HASH_ANNOTATION: spec.spec_hash(),
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": SERVER_UID,
                        "runAsGroup": SERVER_GID,
                        "fsGroup": SERVER_GID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "state", "emptyDir": {}},
                    ],
                    "terminationGracePeriodSeconds": 40,
                },
            },
        },
    }

    def meta_of(name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": labels}
        if namespace:
            out["namespace"] = namespace
        else:
            out["annotations"] = _skips({"CKV_K8S_21": _NO_NAMESPACE})
        return out

    service_meta = meta_of(spec.name)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": service_meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    # Ingress to the server's port only; egress stays open (the stores, the object store).
    network_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta_of(spec.name),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": spec.port, "protocol": "TCP"}]}],
        },
    }
    return [deployment, service, network_policy]


def _secret_ref(name: str, secret: str, key: str, optional: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def write_manifests(manifests: list[dict[str, Any]], path: Path) -> Path:
    """Write manifests as one multi-document YAML file, plain (no anchors or aliases)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.dump_all(manifests, Dumper=PlainDumper, sort_keys=False, default_flow_style=False),
        encoding="utf-8",
    )
    return path


class KubernetesRuntime(Runtime):
    """Keeps ``<out_dir>/<deployment>.yaml`` in step with the desired state.

    Args:
        out_dir: Folder of the manifests.
        image: Container image of the servers.
        namespace: Namespace of every object.
        env: Environment of the server containers.
        store_secret: Name of the Secret the servers read the store URLs from.
    """

    name = "kubernetes"

    def __init__(
        self,
        out_dir: Path,
        *,
        image: str = DEFAULT_IMAGE,
        namespace: str | None = None,
        env: dict[str, str] | None = None,
        store_secret: str = DEFAULT_STORE_SECRET,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.image = image
        self.namespace = namespace
        self.env = dict(env or {})
        self.store_secret = store_secret

    def _path(self, name: str) -> Path:
        return self.out_dir / f"{name}.yaml"

    def live_state(self) -> dict[str, LiveDeployment]:
        """The deployments whose manifests are in the folder."""
        out: dict[str, LiveDeployment] = {}
        if not self.out_dir.is_dir():
            return out
        for path in sorted(self.out_dir.glob("*.yaml")):
            try:
                docs = load_yaml_all(read_text(path), str(path))
            except SpecError as exc:
                raise GitOpsError(f"{exc} (not a manifest written by opsloop)") from exc
            try:
                meta = docs[0]["metadata"]
                spec = RuntimeSpec.model_validate(json.loads(meta["annotations"][SPEC_ANNOTATION]))
                replicas = int(docs[0]["spec"]["replicas"])
            except (LookupError, TypeError, ValueError) as exc:
                raise GitOpsError(f"{path}: not a manifest written by opsloop ({exc})") from exc
            out[spec.name] = LiveDeployment(
                name=spec.name,
                spec=spec,
                # Rendered, not run: the manifest's replica count is what is "live" here.
                running=replicas,
                details={"manifest": str(path)},
            )
        return out

    def apply(self, name: str, desired: RuntimeSpec) -> LiveDeployment:
        """Write the deployment's manifests."""
        manifests = render_manifests(
            desired,
            image=self.image,
            namespace=self.namespace,
            env=self.env,
            store_secret=self.store_secret,
        )
        path = write_manifests(manifests, self._path(name))
        return LiveDeployment(
            name=name, spec=desired, running=desired.replicas, details={"manifest": str(path)}
        )

    def stop(self, name: str) -> None:
        """Remove the deployment's manifests."""
        self._path(name).unlink(missing_ok=True)

    def health(self, name: str) -> Health:
        """Unknown while the manifests exist: the cluster reports health, not opsloop."""
        if not self._path(name).is_file():
            return Health(status=HealthStatus.MISSING, reason="no manifests rendered")
        live = self.live_state().get(name)
        if live is not None and live.spec.replicas == 0:
            return Health(status=HealthStatus.SUSPENDED, reason="scaled to 0 replicas")
        return Health(
            status=HealthStatus.UNKNOWN,
            reason=f"manifests in {self._path(name)}; the cluster reports health",
        )
