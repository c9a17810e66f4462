"""The registry API: register a model version, load one back, manage aliases."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.artifacts.remote import RemoteArtifactStore
from opsloop.context import current_project
from opsloop.errors import (
    InvalidRequestError,
    ModelLoadError,
    NotFoundError,
    RegistryError,
    UntrustedTypeError,
)
from opsloop.names import check_name
from opsloop.registry.admission import admission_policy, require_admitted, require_alias_admitted
from opsloop.registry.packaging import (
    ModelMetadata,
    checked_model_dir,
    declared_trusted_types,
    load_model_dir,
    save_model,
)
from opsloop.registry.signing import (
    project_trusted_keys,
    sign_version,
    signature_bundle,
    verify_version,
)
from opsloop.registry.trust import check_extra_types
from opsloop.registry.uri import parse_model_uri, resolve_model_uri
from opsloop.secops.scan import scan_path
from opsloop.secops.signing import SignatureError
from opsloop.tracking import active_run

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from opsloop.artifacts import ArtifactStore
    from opsloop.registry.signature import ColumnSpec
    from opsloop.secops.keys import PublicKey
    from opsloop.store import ModelVersionInfo, RegisteredModelInfo, Store

__all__ = [
    "LoadedModel",
    "delete_alias",
    "export_model",
    "get_model",
    "get_model_version",
    "list_model_versions",
    "list_models",
    "load_model",
    "register_model",
    "set_alias",
    "update_model",
    "update_model_version",
    "verify_model",
]

log = logging.getLogger(__name__)


class LoadedModel:
    """A model version loaded from the registry or a local folder.

    It satisfies the serving contract (:class:`opsloop.serve.base.ServableModel`).

    Attributes:
        name: Model name (the folder name for a local folder).
        version: Version number as text (``"local"`` for a local folder).
        signature: Input columns, in order.
        metadata: The parsed ``MLmodel`` file.
        model: The estimator.
        path: The folder the model was loaded from.
        info: The registry record, None for a local folder.
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        model: Any,
        metadata: ModelMetadata,
        path: Path,
        info: ModelVersionInfo | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.model = model
        self.metadata = metadata
        self.signature: list[ColumnSpec] = list(metadata.signature.inputs)
        self.path = path
        self.info = info
        self._columns = [c.name for c in self.signature]
        self._method = metadata.signature.output.method

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in the order of the probability columns; None for non-classifiers."""
        classes = self.metadata.signature.output.classes
        return None if classes is None else list(classes)

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``, or the folder path for a local folder."""
        return self.info.uri if self.info is not None else str(self.path)

    def input_example(self) -> pd.DataFrame | None:
        """The example rows stored with the model, if any."""
        file = self.metadata.input_example_file
        return None if file is None else pd.read_parquet(self.path / file)

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        if list(df.columns) == self._columns:
            return df
        missing = [c for c in self._columns if c not in df.columns]
        if missing:
            raise InvalidRequestError(
                f"model '{self.name}' version {self.version}: missing input columns: "
                f"{', '.join(missing)}",
                field=missing[0],
            )
        return df.loc[:, self._columns]

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Class probabilities ``(n, k)`` for classifiers that have them, else ``(n,)``."""
        return np.asarray(getattr(self.model, self._method)(self._frame(df)))

    def predict_labels(self, df: pd.DataFrame) -> np.ndarray:
        """The estimator's ``predict``: class labels for classifiers."""
        return np.asarray(self.model.predict(self._frame(df)))

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, {self.version!r}, {self.metadata.model_class})"


def register_model(
    name: str,
    model: Any = None,
    *,
    path: Path | str | None = None,
    signature: Sequence[ColumnSpec] | None = None,
    input_example: pd.DataFrame | None = None,
    metrics: Mapping[str, float] | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    dataset_digest: str | None = None,
    details: Mapping[str, Any] | None = None,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
    trusted_types: Sequence[str] | None = None,
) -> ModelVersionInfo:
    """Package (or take a packaged folder), upload it and add it as the model's next version.

    Every check runs and the folder is uploaded before the version row is written, in one
    transaction with the model (created if new), its tags and alias: a failure registers
    nothing. Blobs uploaded before a failure stay in the content-addressed artifact store,
    where they are harmless.

    Everything the model file names must be trusted (see :mod:`opsloop.registry.trust`): by
    the allow-list, the project's ``security.trusted_types`` or ``trusted_types``; a packaged
    folder's own ``MLmodel`` list counts for nothing. The explicitly trusted types the model
    needs are kept on the version (``details["package"]["extra_trusted_types"]``, what loading
    it trusts) and recorded as a ``model_version.trusted_types`` event. Every file of the
    version is scanned (:func:`opsloop.secops.scan_path`) and the result kept as
    ``details["scan"]``: status, scanner, version, time and findings by severity.

    Args:
        name: Model name.
        model: A fitted estimator to package; or pass ``path`` instead.
        path: A folder written by :func:`~opsloop.registry.save_model`; it is verified.
        signature: Input columns (with ``model``); inferred from ``input_example`` if omitted.
        input_example: A few input rows (with ``model``).
        metrics: Evaluation metrics to record (with ``model``).
        description: Description of the version.
        tags: Tags of the version.
        alias: Alias to point at the new version.
        run_id: The producing run; default the active run, then the folder's recorded run.
        dataset_digest: The training data set version.
        details: Extra JSON-ready details kept on the version record, next to ``package``
            (a summary of ``MLmodel``) and ``scan`` (the scan's summary).
        store: Metadata store (default: the current project's).
        artifacts: Artifact store (default: the current project's).
        trusted_types: Types and functions to trust beyond the allow-list and the project's
            ``security.trusted_types``.

    Returns:
        The new version.

    Raises:
        RegistryError: Bad arguments, or the model cannot be packaged.
        ModelLoadError: ``path`` is not a sound packaged model.
        UntrustedTypeError: The model names something not trusted, or never trustable.
        NotFoundError: ``run_id`` is not a run of this store.
        SecurityError: ``alias`` is given and the admission policy refuses the new version.
    """
    if (model is None) == (path is None):
        raise RegistryError("pass either a model or the path of a packaged model folder")
    if path is not None and (
        signature is not None or input_example is not None or metrics is not None
    ):
        raise RegistryError(
            "signature, input_example and metrics are recorded when a model is packaged; "
            "pass them to save_model, not with path="
        )
    _check_name("model", name)
    if alias is not None:
        _check_name("alias", alias)
        if alias.isdigit():
            raise RegistryError(f"invalid alias {alias!r}: an alias cannot be a number")
    version_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    user_details = _json_ready("details", details)
    for reserved, what in (
        ("package", "the MLmodel summary"),
        ("signature", "the signature"),
        ("scan", "the model scan"),
    ):
        if reserved in user_details:
            raise RegistryError(f"details: the key {reserved!r} is reserved for {what}")
    declared = declared_trusted_types(trusted_types)
    store, artifacts = _stores(store, artifacts)
    if run_id is not None:
        store.runs.get(run_id)
    else:
        run_id = _active_run_id(store)

    if path is not None:
        folder = Path(path).resolve()
        checked = checked_model_dir(folder, trusted_types=sorted(declared))
        meta, used = checked.meta, checked.used_extra
        if run_id is None and meta.run_id is not None and _run_exists(store, meta.run_id):
            run_id = meta.run_id
        scan = scan_path(folder, trusted_types=sorted(declared)).summary()
        signed = sign_version(folder, artifacts)
        digest = _upload(artifacts, folder, checked.digest)
        source = str(folder)
    else:
        with tempfile.TemporaryDirectory(prefix="opsloop-package-") as tmp:
            packaged = save_model(
                model,
                Path(tmp) / "model",
                signature=signature,
                input_example=input_example,
                metrics=metrics,
                run_id=run_id,
                trusted_types=trusted_types,
            )
            expected = checked_model_dir(packaged.path, trusted_types=sorted(declared)).digest
            scan = scan_path(packaged.path, trusted_types=sorted(declared)).summary()
            signed = sign_version(packaged.path, artifacts)
            digest = _upload(artifacts, packaged.path, expected)
        meta, used = packaged.metadata, packaged.metadata.extra_trusted_types
        source = f"python:{meta.model_class}"

    events: list[tuple[str, dict[str, Any]]] = []
    if used:
        events.append(
            (
                "model_version.trusted_types",
                {"types": used, "sources": {t: declared[t] for t in used}},
            )
        )
    recorded = {
        "package": {**meta.summary(), "extra_trusted_types": used},
        "signature": signed,
        "scan": scan,
        **user_details,
    }
    if alias is not None and not isinstance(artifacts, RemoteArtifactStore):
        # (A server checks the version it signed itself, before the alias moves.)
        require_alias_admitted(store, name, alias, None, recorded)
    return store.models.create_version(
        name,
        artifact_digest=digest,
        run_id=run_id,
        dataset_digest=dataset_digest,
        source=source,
        description=description,
        # What loading the version trusts is what was checked here, not the folder's claim.
        details=recorded,
        tags=version_tags,
        alias=alias,
        events=events,
    )


def load_model(
    uri: str | Path,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
    cache_dir: Path | None = None,
    trusted_types: Sequence[str] | None = None,
) -> LoadedModel:
    """Load a model version by URI, or a packaged local folder.

    A registered version is fetched once into ``cache_dir/<digest hex>`` (every file checked
    against its digest on download) and loaded from there afterwards. Every load checks the
    folder's files against ``MLmodel``, a cached copy as a whole against the version's
    artifact digest (a copy that differs is discarded and fetched again), and everything the
    model file names against the allow-list of :mod:`opsloop.registry.trust` plus the types
    trusted explicitly: for a registered version those recorded on it when it was registered,
    for a local folder the project's ``security.trusted_types``; and ``trusted_types`` for
    both. Nothing is unpickled, and nothing is trusted because the folder says so.

    Before anything is deserialised, a registered version's files are verified against the
    signature made when it was registered (see :mod:`opsloop.registry.signing`), by the
    project's keys or ``security.trusted_keys``.

    Args:
        uri: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``, or
            a folder.
        store: Metadata store (default: the current project's).
        artifacts: Artifact store (default: the current project's).
        cache_dir: Where fetched folders are kept (default
            ``<project>/.opsloop/cache/models``).
        trusted_types: Types and functions to trust beyond those above.

    Raises:
        NotFoundError: The model, version, alias or folder does not exist.
        ModelLoadError: The folder is not a sound packaged model.
        UntrustedTypeError: The model names something not trusted, or never trustable.
        SignatureError: The version's signature is missing, by an unknown key, or does not
            match its files.
        SecurityError: The project's admission policy (``security`` in ``opsloop.yaml``)
            refuses the version; the refusal is recorded as a ``security.refused`` event.
    """
    local = _local_only(uri)
    if local is not None:
        return _load_local(local, trusted_types)
    if store is None:
        # A lookup: outside a project it must not create an empty store to look in.
        current_project().require_state(f"load_model({str(uri)!r})")
    store, artifacts = _stores(store, artifacts)
    ref = resolve_model_uri(uri, store=store)
    if isinstance(ref, Path):
        return _load_local(ref, trusted_types)
    # Only what the admission policy admits is loaded (and so served). The signature is not
    # only looked for here: it is verified below, which names a missing one precisely.
    policy = admission_policy().model_copy(update={"require_signature": False})
    require_admitted(store, ref.model_name, ref.version, ref.details, where="load", policy=policy)
    package = ref.details.get("package")
    recorded = package.get("extra_trusted_types", []) if isinstance(package, dict) else []
    if not isinstance(recorded, list):
        recorded = []
    # The store's record is checked like any other list: the denylist wins over it too.
    extra = sorted(
        {
            *check_extra_types(recorded, source=f"trusted types recorded on {ref.uri}"),
            *check_extra_types(trusted_types or (), source="trusted_types argument"),
        }
    )
    folder, fresh = _cached_copy(artifacts, ref.artifact_digest, cache_dir)
    trusted = project_trusted_keys()
    try:
        # The signature is checked before anything in the folder is deserialised.
        verify_version(ref, folder, artifacts, trusted)
        model, meta = load_model_dir(
            folder, trusted_types=extra, expected_digest=ref.artifact_digest
        )
    except UntrustedTypeError:
        # The copy matches the registered artifact (that is checked first): fetching it
        # again would bring the same types back.
        raise
    except (ModelLoadError, SignatureError) as exc:
        if fresh:
            raise
        log.warning("cached copy of %s failed its checks (%s); fetching it again", ref.uri, exc)
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
        _fetch(artifacts, ref.artifact_digest, folder)
        verify_version(ref, folder, artifacts, trusted)
        model, meta = load_model_dir(
            folder, trusted_types=extra, expected_digest=ref.artifact_digest
        )
    return LoadedModel(
        name=ref.model_name,
        version=str(ref.version),
        model=model,
        metadata=meta,
        path=folder,
        info=ref,
    )


def verify_model(
    uri: str,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
    cache_dir: Path | None = None,
    trusted: list[PublicKey] | None = None,
) -> tuple[ModelVersionInfo, Path]:
    """Fetch a registered version's files and verify its signature, loading nothing.

    A cached copy that fails is fetched again and verified once more, as in
    :func:`load_model`. ``trusted`` defaults to the current project's trusted keys.

    Returns:
        The version and the verified folder (in ``cache_dir``).

    Raises:
        NotFoundError: The model, version or alias does not exist.
        SignatureError: Missing signature, an unknown key, or files that differ.
    """
    store, artifacts = _stores(store, artifacts)
    ref = resolve_model_uri(uri, store=store)
    if isinstance(ref, Path):
        raise RegistryError(f"{uri}: only registered versions (models:/...) carry a signature")
    folder, fresh = _cached_copy(artifacts, ref.artifact_digest, cache_dir)
    if trusted is None:
        trusted = project_trusted_keys()
    try:
        verify_version(ref, folder, artifacts, trusted)
    except SignatureError:
        if fresh:
            raise
        shutil.rmtree(folder, ignore_errors=True)
        _fetch(artifacts, ref.artifact_digest, folder)
        verify_version(ref, folder, artifacts, trusted)
    return ref, folder


def export_model(
    uri: str,
    out: Path,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
) -> ModelVersionInfo:
    """Write a verified version's files to ``out/model/`` and its signature to
    ``out/model.sig``, checkable with the OpenSSF ``model_signing verify`` command.

    Raises:
        RegistryError: ``out/model`` or ``out/model.sig`` exists already.
        SignatureError: The version does not verify.
    """
    out = Path(out)
    target, sig = out / "model", out / "model.sig"
    for existing in (target, sig):
        if existing.exists():
            raise RegistryError(f"cannot export to {out}: {existing} exists already")
    store, artifacts = _stores(store, artifacts)
    ref, folder = verify_model(uri, store=store, artifacts=artifacts)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, target, symlinks=False)
    sig.write_bytes(signature_bundle(ref, artifacts))
    return ref


def get_model(name: str, *, store: Store | None = None) -> RegisteredModelInfo:
    """A registered model with its aliases, tags and latest version number."""
    return _store(store).models.get(name)


def list_models(*, store: Store | None = None) -> list[RegisteredModelInfo]:
    """Every registered model, by name."""
    return _store(store).models.list()


def get_model_version(name: str, version: int, *, store: Store | None = None) -> ModelVersionInfo:
    """One version of a model."""
    return _store(store).models.get_version(name, int(version))


def list_model_versions(name: str, *, store: Store | None = None) -> list[ModelVersionInfo]:
    """Versions of a model, newest first."""
    return _store(store).models.list_versions(name)


def set_alias(name: str, alias: str, version: int, *, store: Store | None = None) -> int | None:
    """Point ``alias`` at ``version``; return the version it pointed at before, if any.

    Raises:
        SecurityError: The admission policy refuses the version (see
            :mod:`opsloop.registry.admission`).
    """
    s = _store(store)
    info = s.models.get_version(name, int(version))
    require_alias_admitted(s, name, alias, info.version, info.details)
    return s.models.set_alias(name, alias, int(version))


def delete_alias(name: str, alias: str, *, store: Store | None = None) -> None:
    """Remove an alias."""
    _store(store).models.delete_alias(name, alias)


def update_model(
    name: str,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    store: Store | None = None,
) -> RegisteredModelInfo:
    """Change a model's description and/or set tags; return the updated model."""
    s = _store(store)
    s.models.update(
        name,
        description=description,
        tags=None if tags is None else {str(k): str(v) for k, v in tags.items()},
    )
    return s.models.get(name)


def update_model_version(
    name: str,
    version: int,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    store: Store | None = None,
) -> ModelVersionInfo:
    """Change a version's description and/or set tags; return the updated version."""
    return _store(store).models.update_version(
        name,
        int(version),
        description=description,
        tags=None if tags is None else {str(k): str(v) for k, v in tags.items()},
    )


def _load_local(folder: Path, trusted_types: Sequence[str] | None) -> LoadedModel:
    folder = folder.resolve()
    extra = sorted(declared_trusted_types(trusted_types))
    model, meta = load_model_dir(folder, trusted_types=extra)
    return LoadedModel(name=folder.name, version="local", model=model, metadata=meta, path=folder)


def _upload(artifacts: ArtifactStore, folder: Path, expected: str) -> str:
    digest = artifacts.put_dir(folder)
    if digest != expected:
        # The folder changed between its checks and its upload: what was uploaded is not
        # what was checked.
        raise ModelLoadError(
            f"{folder}: the folder changed while it was being registered",
            hint="register it again once nothing writes to it",
        )
    return digest


def _local_only(uri: str | Path) -> Path | None:
    # A local folder needs no store; do not open the project's store just to load one.
    ref = parse_model_uri(uri)
    if isinstance(ref, Path):
        if not ref.is_dir():
            raise NotFoundError(f"model folder {ref} does not exist")
        return ref
    return None


def _cached_copy(
    artifacts: ArtifactStore, digest: str, cache_dir: Path | None
) -> tuple[Path, bool]:
    """The cached copy of a registered artifact (fetched when absent), and whether it was
    fetched just now. ``cache_dir`` defaults to the project's model cache."""
    if cache_dir is None:
        cache_dir = current_project().state_dir / "cache" / "models"
    folder = cache_dir / digest.split(":", 1)[-1]
    fresh = not folder.is_dir()
    if fresh:
        _fetch(artifacts, digest, folder)
    return folder, fresh


def _fetch(artifacts: ArtifactStore, digest: str, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name[:16]}.tmp-", dir=folder.parent))
    try:
        artifacts.get_dir(digest, staging)
        try:
            os.replace(staging, folder)
        except OSError:
            # Another process put the same folder in place first; theirs is as good as ours.
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _store(store: Store | None) -> Store:
    if store is not None:
        return store

    return current_project().store


def _stores(store: Store | None, artifacts: ArtifactStore | None) -> tuple[Store, ArtifactStore]:
    if store is not None and artifacts is not None:
        return store, artifacts

    project = current_project()
    return store or project.store, artifacts or project.artifacts


def _active_run_id(store: Store) -> str | None:
    run = active_run()
    if run is None or not _run_exists(store, run.id):
        return None
    return run.id


def _run_exists(store: Store, run_id: str) -> bool:
    try:
        store.runs.get(run_id)
    except NotFoundError:
        return False
    return True


def _check_name(kind: str, name: str) -> None:
    # The store checks names too; checking here makes a bad name fail before the model is
    # packaged and uploaded.
    check_name(kind, name, RegistryError)


def _json_ready(what: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        checked: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} are not JSON-ready: {exc}") from exc
    return checked
