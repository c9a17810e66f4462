"""The ML-BOM of a model version: valid CycloneDX 1.6, with its model card, data sets, packages
and the hash of every file — checked against the schema bundled with cyclonedx-python-lib."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from sklearn.linear_model import LinearRegression, LogisticRegression

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.context import Project, open_project
from opsloop.errors import SecurityError
from opsloop.registry import register_model
from opsloop.secops.bom import (
    DatasetRecord,
    PythonEnvironment,
    build_ml_bom,
    file_hashes,
    ml_bom_json,
    pypi_purl,
    validate_ml_bom,
)
from opsloop.store import ModelVersionInfo, Store, open_store
from tests.lifecycle.test_lifecycle import base_spec, make_frame

DATA_DIGEST = hashlib.sha256(b"the training data").hexdigest()
FILE_DIGEST = hashlib.sha256(b"data/churn.csv").hexdigest()
GATES = [
    {
        "name": "min_auc",
        "kind": "threshold",
        "passed": True,
        "metric": "roc_auc",
        "value": 0.91,
        "requirement": "roc_auc >= 0.8",
        "message": "roc_auc 0.91 >= 0.8",
    },
    {
        "name": "beats_champion",
        "kind": "vs_champion",
        "passed": False,
        "metric": "roc_auc",
        "value": 0.91,
        "champion_value": 0.93,
        "requirement": "roc_auc >= champion - 0.01",
        "message": "roc_auc 0.91 < 0.92",
    },
]
DATASET = {
    "digest": DATA_DIGEST,
    "source": "data/*.csv",
    "rows": 60,
    "columns": {"tenure": "float64", "plan": "object"},
    "files": [{"path": "data/churn.csv", "sha256": FILE_DIGEST, "size": 1234}],
    "created_at": "2026-01-02T03:04:05+00:00",
}


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"tenure": rng.normal(10, 3, 60), "spend": rng.normal(50, 9, 60)})
    return x, (x["tenure"] > 10).to_numpy().astype(int)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}", actor="tester")
    try:
        yield store, open_artifact_store(str(tmp_path / "artifacts"))
    finally:
        store.close()


@pytest.fixture
def version(stores: tuple[Store, ArtifactStore], tmp_path: Path) -> tuple[ModelVersionInfo, Path]:
    """A registered classifier with gate results and its data set, and its fetched files."""
    store, artifacts = stores
    x, y = _frame()
    info = register_model(
        "churn",
        LogisticRegression().fit(x, y),
        input_example=x,
        metrics={"roc_auc": 0.91, "accuracy": 0.85},
        dataset_digest=DATA_DIGEST,
        # Its gates failed: the admission policy lets only the failed-gates alias point at it.
        alias="challenger",
        details={"gates": GATES, "gates_passed": False, "dataset": DATASET},
        store=store,
        artifacts=artifacts,
    )
    return info, artifacts.get_dir(info.artifact_digest, tmp_path / "fetched")


def _component(bom: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in bom["components"] if c["type"] == kind]


def test_bom_is_valid_cyclonedx_1_6(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    text = ml_bom_json(info, folder)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    tools = bom["metadata"]["tools"]["components"]
    assert [(t["name"], t["purl"]) for t in tools] == [
        ("opsloop", f"pkg:pypi/opsloop@{tools[0]['version']}")
    ]


def test_model_card(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    bom = build_ml_bom(info, folder)
    [model] = _component(bom, "machine-learning-model")
    assert (model["name"], model["version"]) == ("churn", "1")
    card = model["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "classification"
    assert params["approach"] == {"type": "supervised"}
    assert params["modelArchitecture"].endswith("LogisticRegression")
    assert "tenure: float64" in params["inputs"][0]["format"]
    [data] = _component(bom, "data")
    assert params["datasets"] == [{"ref": data["bom-ref"]}]
    metrics = {
        m["type"]: float(m["value"]) for m in card["quantitativeAnalysis"]["performanceMetrics"]
    }
    assert metrics == {"roc_auc": 0.91, "accuracy": 0.85}
    props = {p["name"]: p["value"] for p in card["properties"]}
    assert props["opsloop:gate:min_auc"] == "passed: roc_auc 0.91 >= 0.8"
    assert props["opsloop:gate:beats_champion"] == "failed: roc_auc 0.91 < 0.92"
    assert props["opsloop:gates_passed"] == "false"
    model_props = {p["name"]: p["value"] for p in model["properties"]}
    assert model_props["opsloop:artifact_digest"] == info.artifact_digest
    assert model_props["opsloop:alias:challenger"] == "models:/churn/1"


def test_dataset_components_carry_their_digests(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    bom = build_ml_bom(info, folder)
    [data] = _component(bom, "data")
    assert data["hashes"] == [{"alg": "SHA-256", "content": DATA_DIGEST}]
    assert data["name"] == "data/*.csv"
    [entry] = data["data"]
    assert entry["type"] == "dataset"
    props = {p["name"]: p["value"] for p in entry["contents"]["properties"]}
    assert props["opsloop:digest"] == DATA_DIGEST
    assert props["opsloop:rows"] == "60"
    assert props["opsloop:column:plan"] == "object"
    [source_file] = data["components"]
    assert source_file["name"] == "data/churn.csv"
    assert source_file["hashes"] == [{"alg": "SHA-256", "content": FILE_DIGEST}]
    model = _component(bom, "machine-learning-model")[0]
    [deps] = [d for d in bom["dependencies"] if d["ref"] == model["bom-ref"]]
    assert data["bom-ref"] in deps["dependsOn"]


def test_every_file_is_hashed_correctly(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    [model] = _component(build_ml_bom(info, folder), "machine-learning-model")
    listed = {f["name"]: f["hashes"] for f in model["components"]}
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted(listed) == on_disk
    assert {"MLmodel", "model.skops"} <= set(listed)
    for name, hashes in listed.items():
        expected = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert hashes == [{"alg": "SHA-256", "content": expected}], name
    assert all(f["type"] == "file" for f in model["components"])


def test_recorded_environment_packages_have_pypi_purls(
    version: tuple[ModelVersionInfo, Path],
) -> None:
    info, folder = version
    bom = build_ml_bom(info, folder)
    meta = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert meta["opsloop:environment:source"] == "recorded"
    libraries = {c["name"]: c for c in _component(bom, "library")}
    assert set(libraries) == set(info.details["package"]["library_versions"])
    for name, component in libraries.items():
        purl = PackageURL.from_string(component["purl"])
        assert (purl.type, purl.version) == ("pypi", component["version"])
        assert purl.name == name.lower().replace("_", "-")
        assert component["version"] == info.details["package"]["library_versions"][name]


def test_running_environment_is_said_and_listed(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    text = ml_bom_json(info, folder, environment=PythonEnvironment.running())
    bom = json.loads(text)
    meta = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert meta["opsloop:environment:source"] == "running"
    assert meta["opsloop:environment:python"] == ".".join(map(str, sys.version_info[:3]))
    purls = {c["purl"] for c in _component(bom, "library")}
    assert f"pkg:pypi/cyclonedx-python-lib@{dist_version('cyclonedx-python-lib')}" in purls
    assert f"pkg:pypi/scikit-learn@{dist_version('scikit-learn')}" in purls
    for purl in purls:
        parsed = PackageURL.from_string(purl)
        assert parsed.type == "pypi" and parsed.version and parsed.name == parsed.name.lower()


def test_purl_normalises_names() -> None:
    assert pypi_purl("Scikit_Learn", "1.5.0") == "pkg:pypi/scikit-learn@1.5.0"
    assert pypi_purl("zope.interface", "6.0") == "pkg:pypi/zope-interface@6.0"
    with pytest.raises(SecurityError, match="invalid Python package name"):
        pypi_purl("  ")


def test_regressor_without_training_details(
    stores: tuple[Store, ArtifactStore], tmp_path: Path
) -> None:
    store, artifacts = stores
    x, _ = _frame()
    info = register_model(
        "spend",
        LinearRegression().fit(x[["tenure"]], x["spend"]),
        input_example=x[["tenure"]],
        store=store,
        artifacts=artifacts,
    )
    folder = artifacts.get_dir(info.artifact_digest, tmp_path / "f")
    bom = json.loads(ml_bom_json(info, folder))
    [model] = _component(bom, "machine-learning-model")
    assert model["modelCard"]["modelParameters"]["task"] == "regression"
    assert "quantitativeAnalysis" not in model["modelCard"]
    assert _component(bom, "data") == []


def test_dataset_record_from_the_store(
    version: tuple[ModelVersionInfo, Path], stores: tuple[Store, ArtifactStore]
) -> None:
    info, folder = version
    store, _ = stores
    recorded = store.datasets.record(
        DATA_DIGEST,
        source="warehouse.churn",
        row_count=99,
        schema={"tenure": "float64"},
        name="churn-2026-01",
        details={"files": DATASET["files"]},
    )
    bom = json.loads(ml_bom_json(info, folder, datasets=[DatasetRecord.from_info(recorded)] * 2))
    [data] = _component(bom, "data")
    assert (data["name"], data["hashes"][0]["content"]) == ("churn-2026-01", DATA_DIGEST)


def test_invalid_documents_are_refused(version: tuple[ModelVersionInfo, Path]) -> None:
    info, folder = version
    bom = build_ml_bom(info, folder)
    bom["components"][0]["type"] = "spaceship"
    with pytest.raises(SecurityError, match=r"not valid CycloneDX 1\.6"):
        validate_ml_bom(json.dumps(bom))
    del bom["components"][0]["type"]
    with pytest.raises(SecurityError, match=r"not valid CycloneDX 1\.6"):
        validate_ml_bom(json.dumps(bom))


def test_bad_inputs_get_clear_errors(
    version: tuple[ModelVersionInfo, Path], tmp_path: Path
) -> None:
    info, folder = version
    with pytest.raises(SecurityError, match="not a folder"):
        file_hashes(tmp_path / "missing")
    (folder / "link").symlink_to(folder / "MLmodel")
    with pytest.raises(SecurityError, match="'link' is a symbolic link"):
        build_ml_bom(info, folder)
    os.unlink(folder / "link")
    with pytest.raises(SecurityError, match="'dataset' has no digest"):
        DatasetRecord.from_details({"source": "x.csv"})
    with pytest.raises(SecurityError, match="a file entry needs a path and a hex SHA-256"):
        DatasetRecord.from_details({"digest": DATA_DIGEST, "files": [{"path": "a", "sha256": "x"}]})
    with pytest.raises(SecurityError, match="package 'numpy' has no version"):
        PythonEnvironment.recorded({"numpy": ""})


def test_cli_writes_a_valid_bom(project: Project, tmp_path: Path) -> None:
    x, y = _frame()
    info = register_model(
        "churn",
        LogisticRegression().fit(x, y),
        input_example=x,
        metrics={"roc_auc": 0.9},
        dataset_digest=DATA_DIGEST,
        alias="champion",
        details={"gates": GATES[:1], "gates_passed": True, "dataset": DATASET},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env["COLUMNS"] = "200"

    def opsloop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsloop", *args],
            cwd=project.dir,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    out = tmp_path / "reports" / "bom.json"
    done = opsloop("bom", "models:/churn@champion", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote the ML-BOM of models:/churn/1" in done.stdout
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    [model] = _component(bom, "machine-learning-model")
    files = {f["name"]: f["hashes"][0]["content"] for f in model["components"]}
    folder = project.artifacts.get_dir(info.artifact_digest, tmp_path / "check")
    assert files == file_hashes(folder)
    meta = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert meta["opsloop:environment:python"] == ".".join(map(str, sys.version_info[:3]))

    printed = opsloop("bom", "models:/churn/1")
    assert printed.returncode == 0, printed.stderr
    assert [
        c["name"] for c in _component(json.loads(printed.stdout), "machine-learning-model")
    ] == ["churn"]

    local = opsloop("bom", str(folder))
    assert local.returncode == 1
    assert "a BOM describes a registered model version" in local.stderr
    bad = opsloop("bom", "models:/churn/1", "--environment", "conda")
    assert bad.returncode == 1
    assert "--environment: expected 'recorded' or 'running', got 'conda'" in bad.stderr


@pytest.mark.slow
def test_bom_of_a_lifecycle_champion(tmp_path: Path) -> None:
    """A version the declared lifecycle trained: real gates, data set and source file."""
    (tmp_path / "data").mkdir()
    make_frame().to_csv(tmp_path / "data" / "customers.csv", index=False)
    (tmp_path / "opsloop.yaml").write_text(yaml.safe_dump(base_spec()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}

    def opsloop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsloop", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**env, "COLUMNS": "200"},
            timeout=300,
            check=False,
        )

    trained = opsloop("run")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    done = opsloop("bom", "models:/lc@champion", "--out", "bom.json")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "bom.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    [model] = _component(bom, "machine-learning-model")
    props = {p["name"]: p["value"] for p in model["modelCard"]["properties"]}
    assert props["opsloop:gate:roc_auc"].startswith("passed: roc_auc ")
    assert props["opsloop:gate:contract"].startswith("passed")
    [data] = _component(bom, "data")
    proj = open_project(tmp_path)
    try:
        version = proj.store.models.get_version_by_alias("lc", "champion")
    finally:
        proj.close()
    assert data["hashes"][0]["content"] == version.dataset_digest
    [source_file] = data["components"]
    csv = (tmp_path / "data" / "customers.csv").read_bytes()
    assert source_file["name"] == "data/customers.csv"
    assert source_file["hashes"][0]["content"] == hashlib.sha256(csv).hexdigest()
