"""Packaging: a model version is a folder holding the model file and an ``MLmodel`` YAML file.

``MLmodel`` records the format, the flavor, library versions, the signature, metrics, the
digest of every other file in the folder, the run and Git commit the model came from, and the
types the model file names, with those of them trusted explicitly. Loading checks all of it
before any model object is built, and never unpickles; what a model file may name is decided
by :mod:`opsloop.registry.trust`, never by ``MLmodel``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shutil
import stat
import tempfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.artifacts import Manifest, ManifestEntry, digest_bytes, digest_file
from opsloop.context import current_project
from opsloop.errors import ModelLoadError, OpsloopError, RegistryError, SpecError
from opsloop.gitutil import GitInfo, git_info
from opsloop.registry.flavors import Flavor, flavor_for, get_flavor
from opsloop.registry.signature import (
    ColumnSpec,
    ModelSignature,
    check_feature_names,
    describe_output,
    infer_signature,
)
from opsloop.registry.trust import TypeRef, check_extra_types, check_types

# Files that are pickles are refused outright (loading one runs arbitrary code) instead of
# being scanned: PICKLE_SUFFIXES names them by suffix, is_pickle by content.
from opsloop.secops.pickles import PICKLE_MAX_OPCODES, PICKLE_SUFFIXES, is_pickle
from opsloop.spec import load_spec
from opsloop.spec.loader import SPEC_FILE
from opsloop.spec.yamlpos import load_yaml

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

__all__ = [
    "FORMAT_VERSION",
    "INPUT_EXAMPLE_FILE",
    "METADATA_FILE",
    "PICKLE_MAX_OPCODES",
    "CheckedModel",
    "ModelMetadata",
    "PackagedModel",
    "checked_model_dir",
    "declared_trusted_types",
    "find_pickles",
    "is_pickle",
    "load_model_dir",
    "read_metadata",
    "save_model",
    "verify_model_dir",
]

METADATA_FILE = "MLmodel"
INPUT_EXAMPLE_FILE = "input_example.parquet"
FORMAT_VERSION = 1
#: Rows of the input example kept in the package (enough to smoke-test a server).
INPUT_EXAMPLE_ROWS = 5

_LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas")
#: Bytes of a file's start checked for a pickle before the folder's listing is known.
PICKLE_SCAN_BYTES = 1 << 16
#: Most entries (files and folders) a model folder may hold; a packaged model has a handful.
MAX_FOLDER_ENTRIES = 256
_SHOWN = 5


class ModelMetadata(BaseModel):
    """The parsed ``MLmodel`` file of a packaged model.

    Attributes:
        format_version: Version of this layout (``FORMAT_VERSION``).
        flavor: How the model file is stored (``sklearn``: skops).
        model_file: The model's file name in the folder.
        model_class: Dotted class name of the model.
        created_at: When the package was written (UTC).
        python_version: Python that wrote it.
        library_versions: Versions of scikit-learn, skops, numpy and pandas that wrote it.
        signature: Input columns in order, and the output.
        metrics: Evaluation metrics.
        files: Digest (``sha256:<hex>``) of every file of the folder except ``MLmodel``.
        trusted_types: Types beyond the format's defaults that the model file names (a record:
            loading checks them against the allow-list, never against this list).
        extra_trusted_types: Those of them trusted explicitly when the model was saved (not by
            the allow-list of :mod:`opsloop.registry.trust`).
        run_id: The run that produced the model.
        git_commit: Commit of the project's Git repository; None outside Git.
        git_dirty: Whether tracked files had uncommitted changes; None outside Git.
        input_example_file: The stored example rows, if any.
        extra: Other JSON-ready metadata given at save time.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int
    flavor: str
    model_file: str
    model_class: str
    created_at: dt.datetime
    python_version: str
    library_versions: dict[str, str] = Field(default_factory=dict)
    signature: ModelSignature
    metrics: dict[str, float] = Field(default_factory=dict)
    files: dict[str, str]
    trusted_types: list[str] = Field(default_factory=list)
    extra_trusted_types: list[str] = Field(default_factory=list)
    run_id: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    input_example_file: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_yaml(self) -> str:
        """The YAML text of the ``MLmodel`` file."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def summary(self) -> dict[str, Any]:
        """The fields worth keeping on the model version record, JSON-ready."""
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "model_class": self.model_class,
            "signature": self.signature.model_dump(mode="json"),
            "metrics": dict(self.metrics),
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "library_versions": dict(self.library_versions),
            "extra_trusted_types": list(self.extra_trusted_types),
        }


@dataclass(frozen=True)
class PackagedModel:
    """A model folder written by :func:`save_model`."""

    path: Path
    metadata: ModelMetadata


def save_model(
    model: Any,
    path: Path | str,
    *,
    signature: Sequence[ColumnSpec] | None = None,
    input_example: pd.DataFrame | None = None,
    metrics: Mapping[str, float] | None = None,
    run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    project_dir: Path | None = None,
    trusted_types: Sequence[str] | None = None,
) -> PackagedModel:
    """Package a fitted model into the folder ``path``.

    The folder is built next to ``path`` and moved into place at the end, so a failure leaves
    nothing behind. Every type and function the model file names must be trusted (see
    :mod:`opsloop.registry.trust`); then the model is loaded back from its file, and, given an
    input example, its predictions are compared with the original's: a package that cannot be
    served is never written.

    Args:
        model: A fitted scikit-learn estimator or pipeline.
        path: Folder to create; it must not exist or be empty.
        signature: Input columns in order; inferred from ``input_example`` when omitted.
        input_example: A few input rows; the first rows are stored with the model.
        metrics: Evaluation metrics to record.
        run_id: The run that produced the model.
        extra: Any other JSON-ready metadata.
        project_dir: Folder whose Git commit and ``security.trusted_types`` are used (default:
            the current project).
        trusted_types: Types and functions to trust beyond the allow-list, as well as the
            project's ``security.trusted_types``; those the model needs are recorded in
            ``MLmodel`` as ``extra_trusted_types``.

    Returns:
        The folder and its parsed metadata.

    Raises:
        UntrustedTypeError: The model names a type or function that is not trusted, or that can
            never be (each is named).
        RegistryError: The model, signature, metrics or folder are unusable.
    """
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RegistryError(f"cannot package the model into {target}: it exists and is not empty")
    flavor = flavor_for(model)
    if signature is None and input_example is None:
        raise RegistryError(
            "a model needs an input signature to be served",
            hint="pass input_example=<a few training rows> or signature=[ColumnSpec(...), ...]",
        )
    inputs = list(signature) if signature is not None else infer_signature(input_example)
    if not inputs:
        raise RegistryError("the signature has no columns")
    check_feature_names(inputs, model)
    model_signature = ModelSignature(inputs=inputs, output=describe_output(model))
    checked_metrics = _check_metrics(metrics)
    checked_extra = _check_extra(extra)
    example = None if input_example is None else _example_rows(input_example, inputs)
    declared = declared_trusted_types(trusted_types, project_dir=project_dir)

    data = flavor.dump(model)
    refs = flavor.references(data)
    used = check_types(refs, where=f"the packaged {type(model).__name__}", extra=sorted(declared))
    trusted = _needs_trust(refs)
    try:
        reloaded = flavor.load(data, trusted)
    except ModelLoadError as exc:
        raise RegistryError(
            f"the packaged {type(model).__name__} cannot be loaded back: {exc.message}",
            hint=exc.hint,
        ) from exc
    if example is not None:
        _compare_predictions(model, reloaded, example, model_signature)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        files: dict[str, str] = {}
        (staging / flavor.model_file).write_bytes(data)
        files[flavor.model_file] = digest_bytes(data)
        example_file = None
        if example is not None:
            example_file = INPUT_EXAMPLE_FILE
            _write_example(example, staging / example_file)
            files[example_file] = digest_file(staging / example_file)[0]
        git = _git(project_dir)
        meta = ModelMetadata(
            format_version=FORMAT_VERSION,
            flavor=flavor.name,
            model_file=flavor.model_file,
            model_class=f"{type(model).__module__}.{type(model).__qualname__}",
            created_at=dt.datetime.now(dt.UTC),
            python_version=platform.python_version(),
            library_versions=_library_versions(),
            signature=model_signature,
            metrics=checked_metrics,
            files=files,
            trusted_types=trusted,
            extra_trusted_types=used,
            run_id=run_id,
            git_commit=None if git is None else git.commit,
            git_dirty=None if git is None else git.dirty,
            input_example_file=example_file,
            extra=checked_extra,
        )
        (staging / METADATA_FILE).write_text(meta.to_yaml(), encoding="utf-8")
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PackagedModel(path=target, metadata=meta)


def read_metadata(path: Path | str) -> ModelMetadata:
    """Parse the ``MLmodel`` file of a model folder (no digest or type checks).

    Raises:
        ModelLoadError: The file is missing, not a regular file, not YAML, or a field is
            invalid (named).
    """
    folder = Path(path)
    file = folder / METADATA_FILE
    if not file.is_file() or file.is_symlink():
        raise ModelLoadError(
            f"{folder} is not a packaged model: it has no {METADATA_FILE} file",
            hint="package models with opsloop.registry.save_model or register_model",
        )
    return _parse_metadata(file, _read_regular(folder, METADATA_FILE))


def _parse_metadata(file: Path, content: bytes) -> ModelMetadata:
    try:
        raw = load_yaml(content.decode("utf-8"), str(file))
    except SpecError as exc:
        where = f"{file}:{exc.line}" if exc.line is not None else str(file)
        raise ModelLoadError(f"{where}: not valid YAML: {exc.detail}") from exc
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{file}: cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{file}: expected a mapping at the top level")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{file}: field 'format_version': {version!r} is not supported "
            f"(this opsloop reads format {FORMAT_VERSION})",
            hint="upgrade opsloop to read models packaged by a newer version",
        )
    try:
        return ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ModelLoadError(f"{file}: field '{field}': {err['msg']}") from exc


def verify_model_dir(
    path: Path | str,
    *,
    trusted_types: Sequence[str] = (),
    expected_digest: str | None = None,
) -> ModelMetadata:
    """Check a model folder without building the model; return its metadata.

    Checks, in order: the folder holds only regular files (no symbolic link) and no pickle,
    ``MLmodel`` parses, the folder holds exactly the files ``MLmodel`` lists and each matches
    its digest, the whole folder matches ``expected_digest`` when given, the flavor is known,
    and everything the model file names is trusted: by the allow-list of
    :mod:`opsloop.registry.trust` or by ``trusted_types`` (never by the list in ``MLmodel``,
    which anyone who can edit the folder can edit).

    Args:
        path: The folder.
        trusted_types: Types and functions trusted explicitly for this model.
        expected_digest: The artifact digest the folder must have (``sha256:<hex>`` of its
            manifest, as the artifact store computes it).

    Raises:
        ModelLoadError: A check failed (the message names the file, relative to the folder).
        UntrustedTypeError: The model file names something not trusted (each is named).
    """
    return checked_model_dir(
        Path(path), trusted_types=trusted_types, expected_digest=expected_digest
    ).meta


def load_model_dir(
    path: Path | str,
    *,
    trusted_types: Sequence[str] = (),
    expected_digest: str | None = None,
) -> tuple[Any, ModelMetadata]:
    """Verify a model folder (see :func:`verify_model_dir`) and load its model.

    Every file is read once: the model is built from the very bytes whose digests were checked,
    so the folder cannot be changed between the checks and the load.

    Returns:
        The model object and the folder's metadata.
    """
    checked = checked_model_dir(
        Path(path), trusted_types=trusted_types, expected_digest=expected_digest
    )
    model = checked.flavor.load(checked.data, checked.trusted)
    return model, checked.meta


def declared_trusted_types(
    trusted_types: Sequence[str] | None, *, project_dir: Path | None = None
) -> dict[str, str]:
    """Types trusted explicitly by the caller and by the project, each with its source.

    The project's are ``security.trusted_types`` of its ``opsloop.yaml`` (``project_dir``'s,
    else the current project's). A project whose ``opsloop.yaml`` cannot be read trusts
    nothing more.

    Returns:
        Type name -> where it is trusted (``trusted_types argument`` or
        ``opsloop.yaml: security.trusted_types``).

    Raises:
        RegistryError: An entry is not a dotted name.
        UntrustedTypeError: An entry can never be trusted.
    """
    declared: dict[str, str] = {}
    if isinstance(trusted_types, str):
        raise RegistryError("trusted_types must be a list of type names, not one string")
    source = "opsloop.yaml: security.trusted_types"
    for name in check_extra_types(_project_trusted_types(project_dir), source=source):
        declared[name] = source
    argument = "trusted_types argument"
    for name in check_extra_types(trusted_types or (), source=argument):
        declared.setdefault(name, argument)
    return declared


def find_pickles(folder: Path) -> list[str]:
    """Relative paths of files in ``folder`` that are pickles, by name or by content.

    Every file is read whole; symbolic links are not followed.
    """
    folder = Path(folder)
    return [
        rel
        for rel in _scan(folder, refuse_links=False)
        if PurePosixPath(rel).suffix.lower() in PICKLE_SUFFIXES
        or is_pickle(_read_regular(folder, rel))
    ]


@dataclass(frozen=True)
class CheckedModel:
    """A model folder that passed every check of :func:`verify_model_dir`.

    Attributes:
        meta: Its parsed ``MLmodel``.
        flavor: The flavor that reads its model file.
        data: The model file's bytes, as checked.
        trusted: The names to pass to the flavor's loader (all checked).
        used_extra: The explicitly trusted types the model file needs.
        digest: The folder's artifact digest.
    """

    meta: ModelMetadata
    flavor: Flavor
    data: bytes
    trusted: list[str]
    used_extra: list[str]
    digest: str


def checked_model_dir(
    folder: Path, *, trusted_types: Sequence[str] = (), expected_digest: str | None = None
) -> CheckedModel:
    """Run the checks of :func:`verify_model_dir`; return what they established."""
    if isinstance(trusted_types, str):
        raise RegistryError("trusted_types must be a list of type names, not one string")
    meta, data, digest = _verified(folder)
    if expected_digest is not None and digest != expected_digest:
        raise ModelLoadError(
            f"{folder}: the folder's content differs from the registered artifact "
            f"{expected_digest}",
            hint="the copy was changed after it was fetched; fetch it again from the registry",
        )
    flavor = get_flavor(meta.flavor)
    refs = flavor.references(data)
    extra = check_extra_types(trusted_types, source="trusted types")
    used = check_types(refs, where=str(folder / meta.model_file), extra=extra)
    return CheckedModel(meta, flavor, data, _needs_trust(refs), used, digest)


def _needs_trust(refs: Sequence[TypeRef]) -> list[str]:
    """The names to pass to the flavor's loader: all checked, none vouched by the format."""
    return sorted({r.name for r in refs if not r.vouched})


def _verified(folder: Path) -> tuple[ModelMetadata, bytes, str]:
    """Check a folder's files against its MLmodel; return it, the model bytes, the digest."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder", hint="pass a packaged model folder")
    present = _scan(folder, refuse_links=True)
    # A first look at every file's start; the listed files are checked whole below.
    pickles = [
        rel
        for rel in present
        if PurePosixPath(rel).suffix.lower() in PICKLE_SUFFIXES
        or is_pickle(_read_regular(folder, rel, limit=PICKLE_SCAN_BYTES))
    ]
    if pickles:
        raise ModelLoadError(
            f"{folder} holds pickle files ({_listed(pickles)}); opsloop never loads pickles "
            "because loading one can run arbitrary code",
            hint="re-package the model with opsloop.registry.save_model (skops format)",
        )
    if METADATA_FILE not in present:
        raise ModelLoadError(
            f"{folder} is not a packaged model: it has no {METADATA_FILE} file",
            hint="package models with opsloop.registry.save_model or register_model",
        )
    raw_meta = _read_regular(folder, METADATA_FILE)
    meta = _parse_metadata(folder / METADATA_FILE, raw_meta)
    listed = set(meta.files)
    bad = sorted(rel for rel in listed | {meta.model_file} if not _inside(rel))
    if bad:
        raise ModelLoadError(
            f"{folder / METADATA_FILE}: field 'files': {bad[0]!r} is not a path inside the folder"
        )
    if meta.model_file not in listed:
        raise ModelLoadError(
            f"{folder / METADATA_FILE}: field 'files': the model file "
            f"'{meta.model_file}' is not listed"
        )
    if meta.input_example_file is not None and meta.input_example_file not in listed:
        raise ModelLoadError(
            f"{folder / METADATA_FILE}: field 'input_example_file': "
            f"{meta.input_example_file!r} is not listed in 'files'"
        )
    others = set(present) - {METADATA_FILE}
    missing = sorted(listed - others)
    if missing:
        raise ModelLoadError(
            f"{folder}: files listed in {METADATA_FILE} are missing: "
            f"{_listed(missing, as_list=True)}"
        )
    unlisted = sorted(others - listed)
    if unlisted:
        raise ModelLoadError(
            f"{folder}: files not listed in {METADATA_FILE} (added after packaging?): "
            f"{_listed(unlisted, as_list=True)}"
        )
    entries = {METADATA_FILE: ManifestEntry(digest=digest_bytes(raw_meta), size=len(raw_meta))}
    data = b""
    for rel in sorted(listed):
        content = _read_regular(folder, rel)
        actual = digest_bytes(content)
        if is_pickle(content):
            # The whole file this time (a pickle can start with a long argument), and the
            # bytes that are kept, whatever was there before.
            raise ModelLoadError(
                f"{folder} holds pickle files ({_listed([rel])}); opsloop never loads pickles "
                "because loading one can run arbitrary code",
                hint="re-package the model with opsloop.registry.save_model (skops format)",
            )
        if actual != meta.files[rel]:
            raise ModelLoadError(
                f"{folder}: {rel}: content does not match its digest in {METADATA_FILE} "
                f"(recorded {meta.files[rel]})",
                hint="the file was changed after packaging; fetch the model again from the "
                "registry",
            )
        entries[rel] = ManifestEntry(digest=actual, size=len(content))
        if rel == meta.model_file:
            data = content
    return meta, data, _manifest_digest(entries)


def _manifest_digest(entries: Mapping[str, ManifestEntry]) -> str:
    # The artifact store's folder digest (ArtifactStore.put_dir): a manifest with the files
    # in the order of their sorted paths, as JSON.
    ordered = {rel: entries[rel] for rel in sorted(entries, key=lambda r: r.split("/"))}
    return digest_bytes(Manifest(files=ordered).model_dump_json().encode())


def _scan(folder: Path, *, refuse_links: bool) -> list[str]:
    """Relative POSIX paths of the regular files under ``folder``, sorted; links never followed.

    Raises:
        ModelLoadError: With ``refuse_links``, the folder holds a symbolic link or a special
            file; or it holds more than ``MAX_FOLDER_ENTRIES`` entries. Only names inside the
            folder are shown, never where a link points.
    """
    files: list[str] = []
    pending = [""]
    count = 0
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(folder / prefix if prefix else folder) as it:
                entries = list(it)
        except OSError as exc:
            raise ModelLoadError(
                f"{folder}: cannot list {prefix or 'the folder'}: {exc.strerror}"
            ) from None
        for entry in entries:
            count += 1
            if count > MAX_FOLDER_ENTRIES:
                raise ModelLoadError(
                    f"{folder} holds more than {MAX_FOLDER_ENTRIES} files and folders; it is "
                    "not a packaged model"
                )
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_symlink():
                if refuse_links:
                    raise ModelLoadError(
                        f"{folder}: {rel} is a symbolic link; a model folder holds regular "
                        "files only",
                        hint="copy the files into the folder instead of linking them",
                    )
            elif entry.is_dir(follow_symlinks=False):
                pending.append(rel)
            elif entry.is_file(follow_symlinks=False):
                files.append(rel)
            elif refuse_links:
                raise ModelLoadError(
                    f"{folder}: {rel} is not a regular file; a model folder holds regular "
                    "files only"
                )
    return sorted(files)


def _read_regular(folder: Path, rel: str, *, limit: int | None = None) -> bytes:
    """Read a regular file of ``folder`` without following a link at its place."""
    path = folder / rel
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ModelLoadError(f"{folder}: {rel}: cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ModelLoadError(f"{folder}: {rel} is not a regular file")
        return f.read() if limit is None else f.read(limit)


def _inside(rel: str) -> bool:
    parts = rel.split("/")
    return "\\" not in rel and "\0" not in rel and all(p not in ("", ".", "..") for p in parts)


def _listed(names: Sequence[str], *, as_list: bool = False) -> str:
    # At most a few names, each from inside the folder; odd ones (a newline …) quoted.
    shown = [n if n.isprintable() and not as_list else repr(n) for n in names[:_SHOWN]]
    text = f"[{', '.join(shown)}]" if as_list else ", ".join(shown)
    more = len(names) - _SHOWN
    return f"{text} and {more} more" if more > 0 else text


def _project_trusted_types(project_dir: Path | None) -> list[str]:
    try:
        if project_dir is None:
            spec = current_project().spec
        else:
            file = Path(project_dir) / SPEC_FILE
            spec = load_spec(file) if file.is_file() else None
    except OpsloopError:
        # A broken opsloop.yaml trusts nothing more; the model is checked against the
        # allow-list alone.
        return []
    return [] if spec is None else list(spec.security.trusted_types)


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or not key:
            raise RegistryError(f"metric name {key!r} must be a non-empty string")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RegistryError(f"metric '{key}': value {value!r} is not a number") from None
        if not math.isfinite(number):
            raise RegistryError(f"metric '{key}': value {number} is not finite")
        out[key] = number
    return out


def _check_extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    try:
        # A JSON round trip keeps exactly what YAML and the store's JSON columns can hold.
        checked: dict[str, Any] = json.loads(json.dumps(dict(extra), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"extra metadata is not JSON-ready: {exc}") from exc
    return checked


def _example_rows(df: pd.DataFrame, inputs: Sequence[ColumnSpec]) -> pd.DataFrame:
    names = [c.name for c in inputs]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise RegistryError(f"input_example lacks signature columns: {', '.join(missing)}")
    return df.loc[:, names].head(INPUT_EXAMPLE_ROWS).reset_index(drop=True)


def _write_example(example: pd.DataFrame, file: Path) -> None:
    try:
        example.to_parquet(file, index=False)
    except Exception as exc:
        # pyarrow raises several types for columns it cannot store (mixed objects, …).
        raise RegistryError(
            f"input_example cannot be stored as Parquet: {type(exc).__name__}: {exc}"
        ) from exc


def _compare_predictions(
    original: Any, reloaded: Any, example: pd.DataFrame, signature: ModelSignature
) -> None:
    method = signature.output.method
    try:
        expected = np.asarray(getattr(original, method)(example))
    except Exception as exc:
        # Whatever the estimator raises on the example, the example does not fit the model.
        raise RegistryError(
            f"the model cannot {method} on input_example: {type(exc).__name__}: {exc}"
        ) from exc
    got = np.asarray(getattr(reloaded, method)(example))
    same = (
        np.allclose(got, expected, rtol=1e-9, atol=0.0, equal_nan=True)
        if np.issubdtype(expected.dtype, np.floating) and got.shape == expected.shape
        else np.array_equal(got, expected)
    )
    if not same:
        raise RegistryError(
            f"the model loaded back from its package predicts differently on input_example "
            f"({type(original).__name__}.{method}); it cannot be packaged faithfully"
        )


def _library_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _git(project_dir: Path | None) -> GitInfo | None:
    if project_dir is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.context: each loads only where it
        # is used, so importing this module stays light.
        from opsloop.context import current_project  # noqa: PLC0415

        try:
            project_dir = current_project().dir
        except OpsloopError:
            # A broken opsloop.yaml must not stop a model from being saved; the working
            # directory is the best guess of where the code came from.
            project_dir = Path.cwd()
    return git_info(project_dir)
