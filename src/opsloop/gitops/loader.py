"""Read the desired state: every deployment document under a folder of the repository, at a
Git revision or from the working tree.

One invalid document never stops the others: it becomes a :class:`DocumentProblem` naming
file, line and field, tied to its deployment when the name can still be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.errors import NotFoundError, SpecError
from opsloop.gitops.document import KIND, DeploymentDocument, document_name, parse_document
from opsloop.gitops.types import RuntimeSpec
from opsloop.spec.yamlpos import load_yaml

if TYPE_CHECKING:
    from opsloop.gitops.repo import GitRepo
    from opsloop.store import Store

__all__ = [
    "WORKING_TREE",
    "DesiredState",
    "DocumentProblem",
    "LoadedDocument",
    "load_desired_state",
    "resolve_spec",
]

WORKING_TREE = "working-tree"
"""The revision recorded for state read from uncommitted files."""

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedDocument:
    """A valid deployment document and the file it came from."""

    file: str
    document: DeploymentDocument

    @property
    def name(self) -> str:
        """The deployment's name."""
        return self.document.name


@dataclass(frozen=True)
class DocumentProblem:
    """A document that could not be used, and why."""

    file: str
    name: str | None
    error: SpecError

    @property
    def message(self) -> str:
        """The error, naming file, line and field."""
        return str(self.error)


@dataclass
class DesiredState:
    """The deployments Git asks for at one revision.

    Attributes:
        revision: Full commit id, or ``working-tree``.
        folder: The folder read, relative to the repository root.
        documents: Valid documents by deployment name.
        problems: Documents that could not be used.
    """

    revision: str
    folder: str
    documents: dict[str, LoadedDocument] = field(default_factory=dict)
    problems: list[DocumentProblem] = field(default_factory=list)

    def problem_files(self) -> set[str]:
        """Files with a problem."""
        return {p.file for p in self.problems}

    def problems_by_name(self) -> dict[str, DocumentProblem]:
        """Problems whose deployment name is known, by name (the first for each name)."""
        out: dict[str, DocumentProblem] = {}
        for p in self.problems:
            if p.name is not None:
                out.setdefault(p.name, p)
        return out


def load_desired_state(
    repo: GitRepo, folder: str = "deploy", *, revision: str | None = "HEAD"
) -> DesiredState:
    """Read every ``*.yaml``/``*.yml`` under ``folder`` (recursively).

    Args:
        repo: The repository.
        folder: Folder relative to the repository root.
        revision: A Git revision, or None for the working tree (uncommitted files).

    Raises:
        GitOpsError: The revision does not exist.
    """
    texts: dict[str, bytes] = {}
    if revision is None:
        base = repo.root / folder
        if base.is_dir():
            for found in sorted(base.rglob("*")):
                rel = found.relative_to(repo.root)
                if (
                    found.is_file()
                    and found.suffix in _SUFFIXES
                    and not any(p.startswith(".") for p in rel.parts)
                ):
                    texts[rel.as_posix()] = found.read_bytes()
        state = DesiredState(revision=WORKING_TREE, folder=folder)
    else:
        commit = repo.resolve(revision)
        for path in repo.list_files(commit, folder):
            if path.endswith(_SUFFIXES):
                content = repo.read(commit, path)
                if content is not None:
                    texts[path] = content
        state = DesiredState(revision=commit, folder=folder)

    seen: dict[str, list[LoadedDocument]] = {}
    for path, raw in texts.items():
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            state.problems.append(
                DocumentProblem(path, None, SpecError("not UTF-8", file=path, line=line))
            )
            continue
        if _other_kind(text):
            continue
        try:
            doc = parse_document(text, path)
        except SpecError as exc:
            state.problems.append(DocumentProblem(path, document_name(text), exc))
            continue
        seen.setdefault(doc.name, []).append(LoadedDocument(path, doc))
    for name, docs in seen.items():
        if len(docs) == 1:
            state.documents[name] = docs[0]
            continue
        files = ", ".join(d.file for d in docs)
        for d in docs:
            state.problems.append(
                DocumentProblem(
                    d.file,
                    name,
                    SpecError(
                        f"deployment '{name}' is defined more than once ({files})",
                        file=d.file,
                        field="metadata.name",
                    ),
                )
            )
    return state


def _other_kind(text: str) -> bool:
    """Whether a file holds a document of another kind (a policy), read by another concern."""
    try:
        data = load_yaml(text, "<document>", unique_keys=False)
    except SpecError:
        return False
    return isinstance(data, dict) and isinstance(data.get("kind"), str) and data["kind"] != KIND


def resolve_spec(doc: DeploymentDocument, store: Store) -> RuntimeSpec:
    """The document with its alias resolved now and every version checked in the registry.

    Raises:
        NotFoundError: The model, alias or a version does not exist; the message names the
            document's field.
    """
    spec = doc.spec
    try:
        if spec.alias is not None:
            version = store.models.get_version_by_alias(spec.model, spec.alias).version
        else:
            assert spec.version is not None
            version = store.models.get_version(spec.model, spec.version).version
    except NotFoundError as exc:
        where = "spec.alias" if spec.alias is not None else "spec.version"
        raise NotFoundError(f"{where}: {exc.message}", hint=exc.hint) from exc
    traffic = (
        {t.version: float(t.weight) for t in spec.traffic} if spec.traffic else {version: 100.0}
    )
    for where, versions in (("spec.traffic", list(traffic)), ("spec.shadow", spec.shadow)):
        for v in versions:
            if v == version:
                continue
            try:
                store.models.get_version(spec.model, v)
            except NotFoundError as exc:
                raise NotFoundError(f"{where}: {exc.message}", hint=exc.hint) from exc
    resources = {
        kind: {k: v for k, v in values.items() if v is not None}
        for kind, values in spec.resources.model_dump().items()
        if any(v is not None for v in values.values())
    }
    return RuntimeSpec(
        name=doc.name,
        model=spec.model,
        version=version,
        alias=spec.alias,
        traffic=traffic,
        shadow=sorted(spec.shadow),
        replicas=spec.replicas,
        port=spec.port,
        resources=resources,
        labels=dict(doc.metadata.labels),
        auth=spec.auth.references(),
        token_secret=spec.auth.secret,
    )
