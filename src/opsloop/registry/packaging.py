"""Packaging: a model version is a folder holding the model file and an ``MLmodel`` YAML file.

``MLmodel`` records the format, the flavor, library versions, the signature, metrics, the
digest of every other file in the folder, the run and Git commit the model came from, and the
types that were trusted when the model was saved. Loading checks all of it before any model
object is built, and never unpickles.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.artifacts import digest_bytes, digest_file
from opsloop.errors import (
    ModelLoadError,
    OpsloopError,
    RegistryError,
    SpecError,
    UntrustedTypeError,
)
from opsloop.gitutil import GitInfo, git_info
from opsloop.registry.flavors import flavor_for, get_flavor
from opsloop.registry.signature import (
    ColumnSpec,
    ModelSignature,
    check_feature_names,
    describe_output,
    infer_signature,
)
from opsloop.spec.yamlpos import load_yaml, read_text

__all__ = [
    "FORMAT_VERSION",
    "INPUT_EXAMPLE_FILE",
    "METADATA_FILE",
    "ModelMetadata",
    "PackagedModel",
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

# Files that are (or usually are) pickles. Loading them runs arbitrary code, so a folder
# holding one is refused outright instead of being scanned.
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".dill", ".cloudpickle", ".pt", ".pth"}
)
_LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas")


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
        trusted_types: Types beyond skops' defaults that the model needs, trusted at save time.
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
) -> PackagedModel:
    """Package a fitted model into the folder ``path``.

    The folder is built next to ``path`` and moved into place at the end, so a failure leaves
    nothing behind. Before the move the model is loaded back from its file with the recorded
    trusted types, and, given an input example, its predictions are compared with the
    original's: a package that cannot be served is never written.

    Args:
        model: A fitted scikit-learn estimator or pipeline.
        path: Folder to create; it must not exist or be empty.
        signature: Input columns in order; inferred from ``input_example`` when omitted.
        input_example: A few input rows; the first rows are stored with the model.
        metrics: Evaluation metrics to record.
        run_id: The run that produced the model.
        extra: Any other JSON-ready metadata.
        project_dir: Folder whose Git commit is recorded (default: the current project).

    Returns:
        The folder and its parsed metadata.

    Raises:
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

    data, trusted = flavor.dump(model)
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
        ModelLoadError: The file is missing, not YAML, or a field is invalid (named).
    """
    folder = Path(path)
    file = folder / METADATA_FILE
    if not file.is_file():
        raise ModelLoadError(
            f"{folder} is not a packaged model: it has no {METADATA_FILE} file",
            hint="package models with opsloop.registry.save_model or register_model",
        )
    try:
        raw = load_yaml(read_text(file), str(file))
    except SpecError as exc:
        where = f"{file}:{exc.line}" if exc.line is not None else str(file)
        raise ModelLoadError(f"{where}: not valid YAML: {exc.detail}") from exc
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


def verify_model_dir(path: Path | str) -> ModelMetadata:
    """Check a model folder without building the model; return its metadata.

    Checks, in order: no pickle files, ``MLmodel`` parses, the folder holds exactly the files
    ``MLmodel`` lists and each matches its digest, the flavor is known, and the model file
    holds no type beyond those trusted at save time.

    Raises:
        ModelLoadError: A check failed (the message names the file).
        UntrustedTypeError: The model file holds a type that was not trusted at save time.
    """
    folder = Path(path)
    meta, data = _verified(folder)
    _check_types(folder, meta, data)
    return meta


def load_model_dir(path: Path | str) -> tuple[Any, ModelMetadata]:
    """Verify a model folder (see :func:`verify_model_dir`) and load its model.

    The model is built from the very bytes whose digest was checked, so the file cannot be
    swapped between the check and the load.

    Returns:
        The model object and the folder's metadata.
    """
    folder = Path(path)
    meta, data = _verified(folder)
    _check_types(folder, meta, data)
    return get_flavor(meta.flavor).load(data, meta.trusted_types), meta


def find_pickles(folder: Path) -> list[str]:
    """Relative paths of files in ``folder`` that are pickles, by name or by content."""
    found: list[str] = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if file.suffix.lower() in PICKLE_SUFFIXES:
            found.append(rel)
            continue
        with file.open("rb") as f:
            head = f.read(2)
        # Pickle protocols 2-5 start with the PROTO opcode (0x80) and the protocol number.
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            found.append(rel)
    return found


def _verified(folder: Path) -> tuple[ModelMetadata, bytes]:
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder", hint="pass a packaged model folder")
    pickles = find_pickles(folder)
    if pickles:
        raise ModelLoadError(
            f"{folder} holds pickle files ({', '.join(pickles)}); opsloop never loads pickles "
            "because loading one can run arbitrary code",
            hint="re-package the model with opsloop.registry.save_model (skops format)",
        )
    meta = read_metadata(folder)
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != METADATA_FILE
    }
    listed = set(meta.files)
    if meta.model_file not in listed:
        raise ModelLoadError(
            f"{folder / METADATA_FILE}: field 'files': the model file "
            f"'{meta.model_file}' is not listed"
        )
    missing = sorted(listed - present)
    if missing:
        raise ModelLoadError(f"{folder}: files listed in {METADATA_FILE} are missing: {missing}")
    unlisted = sorted(present - listed)
    if unlisted:
        raise ModelLoadError(
            f"{folder}: files not listed in {METADATA_FILE} (added after packaging?): {unlisted}"
        )
    data = b""
    for rel in sorted(listed):
        if rel == meta.model_file:
            data = (folder / rel).read_bytes()
            actual = digest_bytes(data)
        else:
            actual = digest_file(folder / rel)[0]
        if actual != meta.files[rel]:
            raise ModelLoadError(
                f"{folder / rel}: content does not match its digest in {METADATA_FILE} "
                f"(recorded {meta.files[rel]}, found {actual})",
                hint="the file was changed after packaging; fetch the model again from the "
                "registry",
            )
    return meta, data


def _check_types(folder: Path, meta: ModelMetadata, data: bytes) -> None:
    extra = sorted(set(get_flavor(meta.flavor).untrusted_types(data)) - set(meta.trusted_types))
    if extra:
        raise UntrustedTypeError(
            f"{folder / meta.model_file} holds types that were not trusted when it was "
            f"saved: {', '.join(extra)}",
            hint="the file was changed after packaging, or comes from elsewhere; "
            "do not load it, re-package the model from its source",
        )


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
        from opsloop.context import current_project

        try:
            project_dir = current_project().dir
        except OpsloopError:
            # A broken opsloop.yaml must not stop a model from being saved; the working
            # directory is the best guess of where the code came from.
            project_dir = Path.cwd()
    return git_info(project_dir)
