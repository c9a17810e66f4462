"""ML bill of materials: a CycloneDX 1.6 ML-BOM describing one model version.

The BOM holds the model as a ``machine-learning-model`` component with its model card (task,
metrics, the data sets it was trained on, the gate results), every file of the version as a
``file`` component with its SHA-256 hash, the data set versions as ``data`` components with
their digests, and the Python packages of the training environment with their versions and
package URLs. opsloop is named as the tool that wrote it.

The document is built with ``cyclonedx-python-lib``; the library has no model for model
cards or component data yet, so those two parts are added to its JSON output, and the result
is checked against the bundled CycloneDX 1.6 schema (:func:`validate_ml_bom`).

This module works on plain inputs (the version record, the fetched folder, data set records);
the caller resolves a model URI and fetches the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from opsloop.errors import SecurityError

if TYPE_CHECKING:
    from opsloop.store.types import DatasetVersionInfo, ModelVersionInfo

__all__ = [
    "BOM_SPEC_VERSION",
    "DatasetFile",
    "DatasetRecord",
    "PythonEnvironment",
    "PythonPackage",
    "build_ml_bom",
    "default_datasets",
    "file_hashes",
    "ml_bom_json",
    "pypi_purl",
    "validate_ml_bom",
]

#: The CycloneDX specification version of the BOMs written here.
BOM_SPEC_VERSION = "1.6"
#: Prefix of the properties opsloop adds (CycloneDX property taxonomy: a namespace per tool).
PROPERTY_PREFIX = "opsloop:"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SCHEMA = SchemaVersion.V1_6
#: Most files a model folder may hold (a packaged model has a handful).
MAX_FILES = 10_000


@dataclass(frozen=True)
class PythonPackage:
    """One installed Python distribution.

    Attributes:
        name: The distribution name as published (``scikit-learn``).
        version: Its version.
    """

    name: str
    version: str

    @property
    def purl(self) -> str:
        """The package URL, ``pkg:pypi/<normalised name>@<version>``."""
        return pypi_purl(self.name, self.version)


@dataclass(frozen=True)
class PythonEnvironment:
    """The Python packages a model was built with, and where that list comes from.

    Attributes:
        source: ``recorded`` when taken from what the model package records about the
            environment that wrote it; ``running`` when read from the environment this BOM is
            written in (which may differ from the training environment).
        packages: The packages, sorted by name.
        python_version: The Python version, if known.
    """

    source: Literal["recorded", "running"]
    packages: tuple[PythonPackage, ...]
    python_version: str | None = None

    @classmethod
    def recorded(
        cls, library_versions: Mapping[str, str], python_version: str | None = None
    ) -> PythonEnvironment:
        """The environment as the model package records it (``MLmodel``'s library versions).

        Raises:
            SecurityError: A name or version is empty or not text.
        """
        packages = []
        for name, version in library_versions.items():
            if not isinstance(name, str) or not name.strip():
                raise SecurityError(f"recorded library versions: invalid package name {name!r}")
            if not isinstance(version, str) or not version.strip():
                raise SecurityError(
                    f"recorded library versions: package '{name}' has no version ({version!r})"
                )
            packages.append(PythonPackage(name.strip(), version.strip()))
        return cls("recorded", _sorted_unique(packages), python_version)

    @classmethod
    def running(cls) -> PythonEnvironment:
        """Every distribution installed in the running interpreter's environment."""
        packages = []
        for dist in importlib_metadata.distributions():
            try:
                name, version = dist.name, dist.version
            except (KeyError, AttributeError, TypeError):  # a broken install's metadata
                continue
            if name and version:
                packages.append(PythonPackage(str(name), str(version)))
        return cls("running", _sorted_unique(packages), platform.python_version())


@dataclass(frozen=True)
class DatasetFile:
    """A source file of a data set version, with its SHA-256 (hex) and size in bytes."""

    path: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """A data set version a model was trained on.

    Attributes:
        digest: The content digest (hex SHA-256 of the data's values, see
            :func:`opsloop.data.content_digest`), optionally prefixed ``sha256:``.
        source: The configured source path or glob.
        rows: Row count, if known.
        columns: Column name to dtype.
        name: A display name (default: the source).
        files: The files it was read from, with their digests.
        created_at: When it was recorded (ISO 8601), if known.
    """

    digest: str
    source: str = ""
    rows: int | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    files: tuple[DatasetFile, ...] = ()
    created_at: str | None = None

    @classmethod
    def from_info(cls, info: DatasetVersionInfo) -> DatasetRecord:
        """From a data set version recorded in the store (``store.datasets``)."""
        files = info.details.get("files") if isinstance(info.details, Mapping) else None
        return cls(
            digest=info.digest,
            source=info.source,
            rows=info.row_count,
            columns={str(k): str(v) for k, v in (info.schema_ or {}).items()},
            name=info.name,
            files=_dataset_files(files, where=f"dataset {info.digest}"),
            created_at=info.created_at.isoformat(),
        )

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> DatasetRecord:
        """From the ``dataset`` entry a training pipeline keeps in a version's details.

        Raises:
            SecurityError: The entry has no digest, or a malformed field.
        """
        digest = details.get("digest")
        if not isinstance(digest, str) or not digest:
            raise SecurityError("version details: 'dataset' has no digest")
        rows = details.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)):
            raise SecurityError(f"version details: dataset rows must be an integer, got {rows!r}")
        columns = details.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise SecurityError("version details: dataset columns must be a mapping")
        created = details.get("created_at")
        return cls(
            digest=digest,
            source=str(details.get("source") or ""),
            rows=rows,
            columns={str(k): str(v) for k, v in columns.items()},
            files=_dataset_files(details.get("files"), where="version details: dataset"),
            created_at=None if created is None else str(created),
        )

    @property
    def hex_digest(self) -> str:
        """The digest without its ``sha256:`` prefix."""
        return self.digest.removeprefix("sha256:")


def pypi_purl(name: str, version: str | None = None) -> str:
    """The package URL of a PyPI distribution (name normalised as the purl spec asks).

    Raises:
        SecurityError: The name is empty.
    """
    normalised = re.sub(r"[-_.]+", "-", name.strip()).lower()
    if not normalised:
        raise SecurityError(f"invalid Python package name {name!r}")
    return PackageURL(type="pypi", name=normalised, version=version or None).to_string()


def file_hashes(folder: Path | str) -> dict[str, str]:
    """The hex SHA-256 of every file under ``folder``, by POSIX path relative to it, sorted.

    Raises:
        SecurityError: ``folder`` is not a folder, or holds a symbolic link, a special file,
            or more than :data:`MAX_FILES` files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SecurityError(f"{root}: not a folder")
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise SecurityError(f"{root}: '{rel}' is a symbolic link; a model folder holds files")
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise SecurityError(f"{root}: '{rel}' is not a regular file")
        if len(out) >= MAX_FILES:
            raise SecurityError(f"{root}: more than {MAX_FILES} files")
        with path.open("rb") as handle:
            out[rel] = hashlib.file_digest(handle, "sha256").hexdigest()
    return out


def build_ml_bom(
    version: ModelVersionInfo,
    folder: Path | str,
    *,
    datasets: Sequence[DatasetRecord] | None = None,
    environment: PythonEnvironment | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.6 ML-BOM of a model version, as a JSON-ready dict.

    Args:
        version: The version's registry record (its ``details`` give the model card: the
            ``package`` summary of ``MLmodel``, and ``gates``/``dataset`` when a training
            pipeline registered it).
        folder: The version's files, as fetched from the artifact store.
        datasets: The data set versions it was trained on; default the version's
            ``details["dataset"]``, else a bare record of its ``dataset_digest``.
        environment: The Python packages of the training environment; default the library
            versions its package records, else the running environment. The BOM says which
            (property ``opsloop:environment:source``).

    Returns:
        The BOM; :func:`ml_bom_json` gives its validated JSON text.

    Raises:
        SecurityError: The folder cannot be hashed, or the version's details are malformed.
    """
    hashes = file_hashes(folder)
    package = version.details.get("package")
    package = package if isinstance(package, Mapping) else {}
    if datasets is None:
        datasets = default_datasets(version)
    # One component per data set version, however often it is named.
    datasets = list({_dataset_ref(r): r for r in datasets}.values())
    if environment is None:
        recorded = package.get("library_versions")
        if isinstance(recorded, Mapping) and recorded:
            environment = PythonEnvironment.recorded(recorded)
        else:
            environment = PythonEnvironment.running()

    model_ref = f"model:{version.model_name}@{version.version}"
    bom = Bom()
    tool_version = _opsloop_version()
    bom.metadata.tools.components.add(
        Component(
            type=ComponentType.APPLICATION,
            name="opsloop",
            version=tool_version,
            purl=PackageURL.from_string(pypi_purl("opsloop", tool_version)),
            bom_ref="tool:opsloop",
        )
    )
    bom.metadata.properties.update(
        [_prop("model:uri", version.uri), _prop("environment:source", environment.source)]
    )
    if environment.python_version:
        bom.metadata.properties.add(_prop("environment:python", environment.python_version))

    files = [
        Component(
            type=ComponentType.FILE,
            name=rel,
            bom_ref=f"{model_ref}/file:{rel}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)],
        )
        for rel, digest in hashes.items()
    ]
    model_props = [
        _prop("artifact_digest", version.artifact_digest),
        _prop("status", version.status),
        _prop("source", version.source),
        _prop("created_at", version.created_at.isoformat()),
    ]
    if version.run_id:
        model_props.append(_prop("run_id", version.run_id))
    if package.get("git_commit"):
        model_props.append(_prop("git_commit", str(package["git_commit"])))
    model_props += [_prop(f"alias:{a}", version.uri) for a in sorted(version.aliases)]
    model_props += [_prop(f"tag:{k}", str(v)) for k, v in sorted(version.tags.items())]
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=version.model_name,
        version=str(version.version),
        description=version.description or None,
        bom_ref=model_ref,
        components=files,
        properties=model_props,
    )
    bom.components.add(model)

    data_components = []
    for record in datasets:
        component = Component(
            type=ComponentType.DATA,
            name=record.name or record.source or f"dataset {record.hex_digest[:12]}",
            version=record.hex_digest[:12],
            bom_ref=_dataset_ref(record),
            hashes=(
                [HashType(alg=HashAlgorithm.SHA_256, content=record.hex_digest)]
                if _HEX64.fullmatch(record.hex_digest)
                else []
            ),
            properties=[_prop("dataset:digest", record.digest)],
            components=[
                Component(
                    type=ComponentType.FILE,
                    name=f.path,
                    bom_ref=f"{_dataset_ref(record)}/file:{f.path}",
                    hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256)],
                )
                for f in record.files
            ],
        )
        data_components.append(component)
        bom.components.add(component)

    library_components = []
    for pkg in environment.packages:
        component = Component(
            type=ComponentType.LIBRARY,
            name=pkg.name,
            version=pkg.version,
            purl=PackageURL.from_string(pkg.purl),
            bom_ref=f"pypi:{pkg.purl}",
        )
        library_components.append(component)
        bom.components.add(component)
    bom.register_dependency(model, [*data_components, *library_components])

    document: dict[str, Any] = json.loads(
        make_outputter(bom, OutputFormat.JSON, _SCHEMA).output_as_string()
    )
    by_ref = {_dataset_ref(r): r for r in datasets}
    for entry in document.get("components", []):
        ref = entry.get("bom-ref")
        if ref == model_ref:
            entry["modelCard"] = _model_card(version, package, datasets, model_ref)
        elif ref in by_ref:
            entry["data"] = [_component_data(by_ref[ref])]
    return document


def ml_bom_json(
    version: ModelVersionInfo,
    folder: Path | str,
    *,
    datasets: Sequence[DatasetRecord] | None = None,
    environment: PythonEnvironment | None = None,
) -> str:
    """:func:`build_ml_bom` as JSON text, checked against the CycloneDX 1.6 schema.

    Raises:
        SecurityError: As :func:`build_ml_bom`, or the document fails the schema.
    """
    text = json.dumps(
        build_ml_bom(version, folder, datasets=datasets, environment=environment), indent=2
    )
    validate_ml_bom(text)
    return text + "\n"


def validate_ml_bom(text: str) -> None:
    """Check a BOM's JSON text against the bundled CycloneDX 1.6 JSON schema (strict).

    Raises:
        SecurityError: The text is not a valid CycloneDX 1.6 document; the message names the
            offending part.
    """
    try:
        error = JsonStrictValidator(_SCHEMA).validate_str(text)
    except Exception as exc:  # the validator's optional dependencies, or unparsable text
        raise SecurityError(f"cannot validate the ML-BOM: {exc}") from exc
    if error is not None:
        raise SecurityError(f"the ML-BOM is not valid CycloneDX {BOM_SPEC_VERSION}: {error}")


def default_datasets(version: ModelVersionInfo) -> list[DatasetRecord]:
    """The data set versions a version names: its details' ``dataset``, else its digest."""
    details = version.details.get("dataset")
    if isinstance(details, Mapping) and details.get("digest"):
        record = DatasetRecord.from_details(details)
        if (
            version.dataset_digest is None
            or record.hex_digest == version.dataset_digest.removeprefix("sha256:")
        ):
            return [record]
    if version.dataset_digest:
        return [DatasetRecord(digest=version.dataset_digest)]
    return []


def _model_card(
    version: ModelVersionInfo,
    package: Mapping[str, Any],
    datasets: Iterable[DatasetRecord],
    model_ref: str,
) -> dict[str, Any]:
    signature = _mapping(package.get("signature"))
    output = _mapping(signature.get("output"))
    kind = output.get("kind")
    task = {"classifier": "classification", "regressor": "regression"}.get(str(kind))
    parameters: dict[str, Any] = {}
    if task is not None:
        parameters["approach"] = {"type": "supervised"}
        parameters["task"] = task
    model_class = package.get("model_class")
    if isinstance(model_class, str) and model_class:
        parameters["architectureFamily"] = model_class.rsplit(".", 1)[-1]
        parameters["modelArchitecture"] = model_class
    refs = [{"ref": _dataset_ref(r)} for r in datasets]
    if refs:
        parameters["datasets"] = refs
    inputs = signature.get("inputs")
    if isinstance(inputs, list) and inputs:
        columns = ", ".join(
            f"{c.get('name')}: {c.get('dtype', '?')}" for c in inputs if isinstance(c, Mapping)
        )
        parameters["inputs"] = [{"format": f"table of columns ({columns})"}]
    if output:
        method = output.get("method", "predict")
        classes = output.get("classes")
        shown = f"{method}" + (f" over classes {classes}" if classes else "")
        parameters["outputs"] = [{"format": shown}]

    card: dict[str, Any] = {"bom-ref": f"{model_ref}/model-card"}
    if parameters:
        card["modelParameters"] = parameters
    metrics = _mapping(package.get("metrics"))
    performance = [
        {"type": str(name), "value": _number(value)}
        for name, value in sorted(metrics.items())
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    if performance:
        card["quantitativeAnalysis"] = {"performanceMetrics": performance}

    properties = []
    gates = version.details.get("gates")
    if isinstance(gates, list):
        for gate in gates:
            if not isinstance(gate, Mapping) or not gate.get("name"):
                continue
            verdict = "passed" if gate.get("passed") is True else "failed"
            why = gate.get("message") or gate.get("requirement")
            text = f"{verdict}: {why}" if why else verdict
            properties.append({"name": f"{PROPERTY_PREFIX}gate:{gate['name']}", "value": text})
    if "gates_passed" in version.details:
        properties.append(
            {
                "name": f"{PROPERTY_PREFIX}gates_passed",
                "value": "true" if version.details.get("gates_passed") is True else "false",
            }
        )
    champion = version.details.get("champion_metrics")
    if isinstance(champion, Mapping):
        for name, value in sorted(champion.items()):
            if isinstance(value, int | float) and not isinstance(value, bool):
                properties.append(
                    {"name": f"{PROPERTY_PREFIX}champion_metric:{name}", "value": _number(value)}
                )
    if properties:
        card["properties"] = properties
    return card


def _component_data(record: DatasetRecord) -> dict[str, Any]:
    properties = [{"name": f"{PROPERTY_PREFIX}digest", "value": record.digest}]
    if record.source:
        properties.append({"name": f"{PROPERTY_PREFIX}source", "value": record.source})
    if record.rows is not None:
        properties.append({"name": f"{PROPERTY_PREFIX}rows", "value": str(record.rows)})
    if record.created_at:
        properties.append({"name": f"{PROPERTY_PREFIX}created_at", "value": record.created_at})
    properties += [
        {"name": f"{PROPERTY_PREFIX}column:{name}", "value": dtype}
        for name, dtype in record.columns.items()
    ]
    data: dict[str, Any] = {
        "bom-ref": f"{_dataset_ref(record)}/data",
        "type": "dataset",
        "name": record.name or record.source or record.hex_digest,
        "contents": {"properties": properties},
    }
    if record.rows is not None:
        data["description"] = f"{record.rows} rows, {len(record.columns)} columns"
    return data


def _dataset_ref(record: DatasetRecord) -> str:
    return f"dataset:{record.hex_digest}"


def _dataset_files(value: Any, *, where: str) -> tuple[DatasetFile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SecurityError(f"{where}: 'files' must be a list")
    out = []
    for item in value:
        sha = item.get("sha256") if isinstance(item, Mapping) else None
        path = item.get("path") if isinstance(item, Mapping) else None
        if not isinstance(path, str) or not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise SecurityError(f"{where}: a file entry needs a path and a hex SHA-256: {item!r}")
        size = item.get("size")
        out.append(DatasetFile(path, sha, size if isinstance(size, int) else None))
    return tuple(out)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sorted_unique(packages: Iterable[PythonPackage]) -> tuple[PythonPackage, ...]:
    seen: dict[str, PythonPackage] = {}
    for pkg in packages:
        seen.setdefault(pypi_purl(pkg.name), pkg)
    return tuple(seen[k] for k in sorted(seen))


def _prop(name: str, value: str | None) -> Property:
    return Property(name=f"{PROPERTY_PREFIX}{name}", value=value)


def _number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else str(value)


def _opsloop_version() -> str:
    try:
        return importlib_metadata.version("opsloop")
    except importlib_metadata.PackageNotFoundError:
        from opsloop import __version__  # noqa: PLC0415 (an uninstalled checkout only)

        return __version__
