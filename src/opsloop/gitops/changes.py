"""Changes to the desired state, each one Git commit: promote a model version, change the
traffic split, roll back.

These functions only write Git; the reconciler applies the new revision. Documents are
rewritten from their parsed form, so YAML comments in a changed document are not kept.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.errors import GitOpsError, NotFoundError, SpecError
from opsloop.gitops.document import (
    API_VERSION,
    KIND,
    DeploymentDocument,
    dump_document,
    parse_document,
    validate_data,
)
from opsloop.gitops.loader import load_desired_state
from opsloop.gitops.reconciler import DEFAULT_FOLDER
from opsloop.gitops.repo import CommitInfo, GitRepo
from opsloop.gitops.wording import split_text, versions_text
from opsloop.store.acting import current_actor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from opsloop.context import Project

__all__ = [
    "ChangeResult",
    "document_history",
    "find_free_port",
    "parse_weights",
    "promote",
    "resize",
    "rollback",
    "set_traffic",
]

FIRST_PORT = 8601
LAST_PORT = 8999


@dataclass(frozen=True)
class ChangeResult:
    """A change written to Git.

    Attributes:
        deployment: Deployment name.
        file: The document's path in the repository.
        commit: The new commit id; None when the document already said so.
        message: The commit message's subject.
        version: The main version the document names afterwards (None when it names an
            alias or was removed).
    """

    deployment: str
    file: str
    commit: str | None
    message: str
    version: int | None = None


class _Workspace:
    """The project's repository, its deploy folder, store and actor."""

    def __init__(self, project: Project | None, folder: str) -> None:
        if project is None:
            # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where
            # it is used, so importing this module stays light.
            from opsloop.context import current_project  # noqa: PLC0415

            project = current_project()
        self.project = project
        self.repo = GitRepo(project.dir)
        self.folder = self.repo.relpath(project.dir / folder)
        # A server acting for a caller (see opsloop.store.acting) commits as that caller.
        acting_now = current_actor()
        self.actor = acting_now.name if acting_now else project.settings.resolved_actor()

    @property
    def store(self) -> Any:
        return self.project.store

    def free_port(self) -> int:
        """The first free port of the configured range (``OPSLOOP_PORTS``) for a new document."""
        first, last = self.project.settings.port_range()
        return find_free_port(_used_ports(self), first=first, last=last)

    def locate(self, name: str) -> tuple[str, DeploymentDocument | None]:
        """The file of deployment ``name`` and its current (committed) document.

        Raises:
            GitOpsError: The document exists but is invalid (fix it first).
        """
        if self.repo.has_commits():
            state = load_desired_state(self.repo, self.folder, revision="HEAD")
            if name in state.documents:
                loaded = state.documents[name]
                return loaded.file, loaded.document
            problem = state.problems_by_name().get(name)
            if problem is not None:
                raise GitOpsError(
                    f"the document of deployment '{name}' is invalid: {problem.message}",
                    hint="fix it (or roll it back) before changing it",
                )
        rec = self.store.deployments.get(name)
        if rec is not None and isinstance(rec.desired.get("file"), str):
            return str(rec.desired["file"]), None
        return f"{self.folder}/{name}.yaml", None

    def locate_existing(self, name: str) -> tuple[str, DeploymentDocument]:
        """The file and committed document of deployment ``name``, which must have one.

        Raises:
            NotFoundError: The deployment has no document.
            GitOpsError: The document exists but is invalid.
        """
        path, doc = self.locate(name)
        if doc is None:
            raise NotFoundError(
                f"deployment '{name}' has no document in {self.folder}/",
                hint=f"create it with 'opsloop deploy promote MODEL --to {name}'",
            )
        return path, doc

    def write(
        self, name: str, path: str, doc: DeploymentDocument, subject: str, body: str
    ) -> str | None:
        text = dump_document(doc)
        # Validated again from its text: what is committed is exactly what the loader reads.
        parse_document(text, path)
        message = f"{subject}\n\n{body}\n\nOpsloop-Actor: {self.actor}\n"
        return self.repo.commit_file(path, text.encode(), message, actor=self.actor)


def find_free_port(
    used: set[int],
    *,
    host: str = "127.0.0.1",
    first: int = FIRST_PORT,
    last: int = LAST_PORT,
) -> int:
    """The first port from ``first`` (8601) that no document uses and nothing listens on.

    Raises:
        GitOpsError: Every port up to ``last`` (8999) is taken.
    """
    for port in range(first, last + 1):
        if port in used:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    raise GitOpsError(
        f"no free port between {first} and {last}",
        hint="free one, give the deployment a port, or widen OPSLOOP_PORTS",
    )


def _used_ports(ws: _Workspace) -> set[int]:
    used: set[int] = set()
    revisions: list[str | None] = [None]
    if ws.repo.has_commits():
        revisions.append("HEAD")
    for rev in revisions:
        state = load_desired_state(ws.repo, ws.folder, revision=rev)
        for loaded in state.documents.values():
            spec = loaded.document.spec
            used.update(range(spec.port, spec.port + max(spec.replicas, 1)))
    return used


def promote(
    model: str,
    *,
    to: str,
    alias: str | None = "champion",
    version: int | None = None,
    project: Project | None = None,
    folder: str = DEFAULT_FOLDER,
    port: int | None = None,
    monitoring: Mapping[str, Any] | None = None,
    remediation: str | None = None,
) -> ChangeResult:
    """Point deployment ``to`` at the version ``alias`` names now (or at ``version``).

    The concrete version is written into the document, so the deployment does not move when
    the alias moves later; any canary split is removed. A deployment without a document gets
    one: a free port, one replica, automated sync with self-heal and prune.

    ``monitoring`` (the document's ``spec.monitoring``, e.g. ``{"window": "30s"}``) and
    ``remediation`` (a policy name) are written when given, replacing what the document had.

    Raises:
        NotFoundError: The model, alias or version does not exist.
        GitOpsError: The deployment serves another model, or its document has uncommitted
            changes or is invalid.
    """
    ws = _Workspace(project, folder)
    if version is not None:
        info = ws.store.models.get_version(model, version)
        source = f"{model} v{version}"
        named = source
    else:
        if alias is None:
            raise GitOpsError("give an alias or a version to promote")
        info = ws.store.models.get_version_by_alias(model, alias)
        source = f"{model}@{alias}"
        named = f"{model} v{info.version} (@{alias})"
    path, doc = ws.locate(to)
    if doc is not None:
        if doc.spec.model != model:
            raise GitOpsError(
                f"deployment '{to}' serves model '{doc.spec.model}', not '{model}'",
                hint=f"see {path}",
            )
        data = doc.to_data()
        spec = data["spec"]
        spec.pop("alias", None)
        spec.pop("traffic", None)
        spec["version"] = info.version
        shadow = [v for v in spec.get("shadow", []) if v != info.version]
        if shadow:
            spec["shadow"] = shadow
        else:
            spec.pop("shadow", None)
        previous = _serving(doc)
        subject = f"promote {named} to {to} (was {previous})"
        body = (
            f"{source} resolved to version {info.version} (artifact {info.artifact_digest}) "
            f"when promoted; the deployment served {previous}."
        )
    else:
        data = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": to},
            "spec": {
                "model": model,
                "version": info.version,
                "replicas": 1,
                "port": port if port is not None else ws.free_port(),
                "syncPolicy": {"automated": True, "selfHeal": True, "prune": True},
            },
        }
        subject = f"deploy {named} to {to}"
        body = (
            f"{source} resolved to version {info.version} (artifact {info.artifact_digest}) "
            "when promoted; new deployment."
        )
    if monitoring is not None:
        data["spec"]["monitoring"] = dict(monitoring)
    if remediation is not None:
        data["spec"]["remediation"] = remediation
    new = validate_data(data, path)
    commit = ws.write(to, path, new, subject, body)
    if commit is not None:
        ws.store.deployments.record_change(
            to,
            "deployment.promoted",
            {"model": model, "version": info.version, "alias": alias, "commit": commit},
            before=_serving(doc) if doc is not None else None,
            after=_serving(new),
        )
    return ChangeResult(to, path, commit, subject, info.version)


def parse_weights(items: Sequence[str]) -> dict[int, float]:
    """``["3=90", "4=10"]`` → ``{3: 90.0, 4: 10.0}``.

    Raises:
        GitOpsError: An item is not ``VERSION=WEIGHT``.
    """
    out: dict[int, float] = {}
    for item in items:
        left, sep, right = item.partition("=")
        try:
            if not sep:
                raise ValueError
            v, w = int(left.strip().lstrip("v")), float(right)
        except ValueError:
            raise GitOpsError(f"{item!r}: expected VERSION=WEIGHT, e.g. 3=90") from None
        if v in out:
            raise GitOpsError(f"version {v} is given twice")
        out[v] = w
    return out


def set_traffic(
    deployment: str,
    weights: Mapping[int, float],
    *,
    shadow: Sequence[int] | None = None,
    project: Project | None = None,
    folder: str = DEFAULT_FOLDER,
) -> ChangeResult:
    """Commit a new traffic split (percent per version, adding up to 100).

    A split that sends everything to one version becomes that version with no split. The
    main version moves to the version with the largest share when it gets none.

    Raises:
        NotFoundError: The deployment or a version does not exist.
        SpecError: The split is invalid (weights not adding up to 100 …).
    """
    ws = _Workspace(project, folder)
    path, doc = ws.locate_existing(deployment)
    if not weights:
        raise GitOpsError("give at least one VERSION=WEIGHT")
    for v in weights:
        ws.store.models.get_version(doc.spec.model, v)
    data = doc.to_data()
    spec = data["spec"]
    routed = {v for v, w in weights.items() if w > 0}
    if len(routed) == 1 and sum(weights.values()) > 0 and len(weights) == 1:
        (only,) = routed
        spec.pop("traffic", None)
        spec.pop("alias", None)
        spec["version"] = only
    else:
        spec["traffic"] = [{"version": v, "weight": w} for v, w in sorted(weights.items())]
        if "version" in spec and spec["version"] not in weights:
            spec["version"] = max(weights.items(), key=lambda kv: (kv[1], kv[0]))[0]
    new_shadow = list(shadow) if shadow is not None else list(spec.get("shadow", []))
    new_shadow = [v for v in new_shadow if v not in routed]
    for v in new_shadow:
        ws.store.models.get_version(doc.spec.model, v)
    if new_shadow:
        spec["shadow"] = new_shadow
    else:
        spec.pop("shadow", None)
    new = validate_data(data, path)
    before = _serving(doc)
    subject = f"set {deployment} traffic to {split_text(weights, new_shadow)} (was {before})"
    commit = ws.write(deployment, path, new, subject, f"The deployment served {before}.")
    if commit is not None:
        ws.store.deployments.record_change(
            deployment,
            "deployment.traffic_changed",
            {"traffic": {str(v): w for v, w in weights.items()}, "commit": commit},
            before=before,
            after=_serving(new),
        )
    return ChangeResult(deployment, path, commit, subject, new.spec.version)


def resize(
    deployment: str,
    *,
    replicas: int | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    reason: str = "",
    project: Project | None = None,
    folder: str = DEFAULT_FOLDER,
) -> ChangeResult:
    """Commit new replicas and per-replica CPU and memory requests (those given).

    A limit below the new request is raised to it, so that the document stays valid for a
    runtime that enforces both.

    Raises:
        NotFoundError: The deployment has no document.
        SpecError: A value is invalid (a quantity that does not parse …).
    """
    ws = _Workspace(project, folder)
    path, doc = ws.locate_existing(deployment)
    data = doc.to_data()
    spec = data["spec"]
    before = _sizing(doc)
    if replicas is not None:
        spec["replicas"] = replicas
    resources = spec.setdefault("resources", {})
    for name, value in (("cpu", cpu), ("memory", memory)):
        if value is None:
            continue
        resources.setdefault("requests", {})[name] = value
        limits = resources.get("limits") or {}
        if name in limits:
            limits[name] = value if _quantity_below(limits[name], value) else limits[name]
    new = validate_data(data, path)
    after = _sizing(new)
    subject = f"resize {deployment} to {after} (was {before})"
    body = reason or f"The deployment ran {before}."
    commit = ws.write(deployment, path, new, subject, body) if after != before else None
    if commit is not None:
        ws.store.deployments.record_change(
            deployment,
            "deployment.resized",
            {"commit": commit, "reason": reason},
            before=before,
            after=after,
        )
    return ChangeResult(deployment, path, commit, subject, new.spec.version)


def _sizing(doc: DeploymentDocument) -> str:
    requests = doc.spec.resources.requests
    return (
        f"{doc.spec.replicas} replica{'s' if doc.spec.replicas != 1 else ''} of "
        f"cpu {requests.cpu or 'unset'}, memory {requests.memory or 'unset'}"
    )


def _quantity_below(limit: str, request: str) -> bool:
    """Whether a limit is below a request (both CPU or both memory quantities)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    units.update({"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12})

    def value(q: str) -> float:
        for suffix in sorted(units, key=len, reverse=True):
            if q.endswith(suffix):
                return float(q[: -len(suffix)]) * units[suffix]
        return float(q)

    return value(limit) < value(request)


def rollback(
    deployment: str,
    *,
    to: str | None = None,
    project: Project | None = None,
    folder: str = DEFAULT_FOLDER,
) -> ChangeResult:
    """Undo the last commit that changed the deployment's document (``git revert``), or
    restore the document as it was at revision ``to``; either way as a new commit.

    Rolling back twice undoes the first rollback; use ``to`` to go further back.

    Raises:
        GitOpsError: The document has no history, or uncommitted changes.
    """
    ws = _Workspace(project, folder)
    path = _history_path(ws, deployment)
    before = _serving_at(ws, "HEAD", path)
    commit: str | None
    if to is None:
        commits = ws.repo.log(path, max_count=1)
        if not commits:
            raise GitOpsError(f"{path} has no commits to roll back", hint="see 'git log'")
        last = commits[0]
        commit = ws.repo.revert(last.sha, actor=ws.actor, paths=[path])
        subject = f'Revert "{last.subject}"'
        target = last.sha
    else:
        target = ws.repo.resolve(to)
        content = ws.repo.read(target, path)
        subject = f"roll back {deployment} to {target[:10]}"
        what = "Restores" if content is not None else "Removes"
        body = f"{what} {path} as of commit {target}."
        message = f"{subject}\n\n{body}\n\nOpsloop-Actor: {ws.actor}\n"
        if content is not None:
            parse_document(content.decode("utf-8", errors="replace"), path)
        commit = ws.repo.commit_file(path, content, message, actor=ws.actor)
    version: int | None = None
    if commit is not None:
        content = ws.repo.read(commit, path)
        if content is not None:
            try:
                version = parse_document(content.decode("utf-8"), path).spec.version
            except (SpecError, UnicodeDecodeError):
                version = None
        ws.store.deployments.record_change(
            deployment,
            "deployment.rolled_back",
            {"target": target, "commit": commit, "file": path},
            before=before,
            after=_serving_at(ws, commit, path),
        )
    return ChangeResult(deployment, path, commit, subject, version)


def _serving_at(ws: _Workspace, revision: str, path: str) -> str | None:
    """What the document at ``path`` served at ``revision``: None when it did not exist,
    ``invalid`` when it did not parse."""
    try:
        content = ws.repo.read(revision, path)
        if content is None:
            return None
        return _serving(parse_document(content.decode("utf-8"), path))
    except (SpecError, UnicodeDecodeError):
        return "invalid"


def _target(doc: DeploymentDocument) -> str:
    return f"v{doc.spec.version}" if doc.spec.version is not None else f"@{doc.spec.alias}"


def _serving(doc: DeploymentDocument) -> str:
    """What a document serves, in words: ``v1``, ``@champion`` or ``v1 90%, v2 10%``."""
    shadow = doc.spec.shadow or []
    if doc.spec.traffic:
        return split_text({t.version: t.weight for t in doc.spec.traffic}, shadow)
    if shadow:
        return f"{_target(doc)}; shadow {versions_text(shadow)}"
    return _target(doc)


def _history_path(ws: _Workspace, deployment: str) -> str:
    try:
        path, _ = ws.locate(deployment)
    except GitOpsError:
        # An invalid document can still be rolled back: that is how it gets fixed.
        state = load_desired_state(ws.repo, ws.folder, revision="HEAD")
        problem = state.problems_by_name().get(deployment)
        if problem is None:
            raise
        path = problem.file
    return path


def document_history(
    deployment: str,
    *,
    project: Project | None = None,
    folder: str = DEFAULT_FOLDER,
    max_count: int = 50,
) -> list[CommitInfo]:
    """Commits that changed the deployment's document, newest first."""
    ws = _Workspace(project, folder)
    return ws.repo.log(_history_path(ws, deployment), max_count=max_count)
