"""Packaging a model folder and loading it back: digests, trusted types, pickles, Git."""

from __future__ import annotations

import pickle
import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from opsloop.artifacts import digest_bytes
from opsloop.errors import ModelLoadError, RegistryError, UntrustedTypeError
from opsloop.registry import (
    METADATA_FILE,
    ColumnSpec,
    load_model_dir,
    read_metadata,
    save_model,
    verify_model_dir,
)
from tests.registry.custom_types import Doubler, Fragile


def _rewrite_metadata(folder: Path, **changes: object) -> None:
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw.update(changes)
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_round_trip_of_a_column_transformer_pipeline(
    tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    packaged = save_model(
        classifier,
        tmp_path / "pkg",
        input_example=frame,
        metrics={"accuracy": 0.91, "f1": np.float64(0.88)},
        run_id="run-123",
        extra={"team": "fraud", "thresholds": [0.5, 0.7]},
        project_dir=tmp_path,
    )
    folder = packaged.path
    assert sorted(p.name for p in folder.iterdir()) == [
        "MLmodel",
        "input_example.parquet",
        "model.skops",
    ]
    meta = read_metadata(folder)
    assert meta == packaged.metadata
    assert meta.format_version == 1
    assert meta.flavor == "sklearn"
    assert meta.model_class == "sklearn.pipeline.Pipeline"
    assert meta.python_version == platform.python_version()
    assert meta.library_versions["scikit-learn"] == sklearn.__version__
    assert "skops" in meta.library_versions
    assert [(c.name, c.dtype) for c in meta.signature.inputs] == [
        ("age", "int64"),
        ("income", "float64"),
        ("city", str(frame["city"].dtype)),  # "str" on pandas 3, "object" before
    ]
    assert meta.signature.output.kind == "classifier"
    assert meta.signature.output.method == "predict_proba"
    assert meta.signature.output.classes == [0, 1, 2]
    assert meta.metrics == {"accuracy": 0.91, "f1": 0.88}
    assert meta.run_id == "run-123"
    assert meta.extra == {"team": "fraud", "thresholds": [0.5, 0.7]}
    assert meta.trusted_types == sio.get_untrusted_types(file=folder / "model.skops")
    assert meta.files["model.skops"] == digest_bytes((folder / "model.skops").read_bytes())
    assert meta.created_at.tzinfo is not None
    # tmp_path is not inside a Git repository
    assert meta.git_commit is None
    assert meta.git_dirty is None
    # MLmodel is plain YAML a person can read
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    assert raw["flavor"] == "sklearn"
    assert raw["signature"]["inputs"][0] == {"name": "age", "dtype": "int64"}

    model, loaded_meta = load_model_dir(folder)
    assert loaded_meta == meta
    assert type(model) is Pipeline
    np.testing.assert_array_equal(model.predict_proba(frame), classifier.predict_proba(frame))
    np.testing.assert_array_equal(model.predict(frame), classifier.predict(frame))
    example = pd.read_parquet(folder / "input_example.parquet")
    assert len(example) == 5
    assert list(example.columns) == ["age", "income", "city"]


def test_explicit_signature_without_example(tmp_path: Path, classifier: Pipeline) -> None:
    sig = [
        ColumnSpec(name="age", dtype="int64"),
        ColumnSpec(name="income", dtype="float64"),
        ColumnSpec(name="city", dtype="string"),
    ]
    meta = save_model(classifier, tmp_path / "pkg", signature=sig, project_dir=tmp_path).metadata
    assert meta.signature.inputs == sig
    assert meta.input_example_file is None
    assert list(meta.files) == ["model.skops"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs an input signature"),
        ({"input_example": "frame", "metrics": {"auc": "high"}}, "metric 'auc'"),
        ({"input_example": "frame", "metrics": {"auc": float("nan")}}, "not finite"),
        ({"input_example": "frame", "extra": {"when": object()}}, "not JSON-ready"),
        (
            {"signature": [ColumnSpec(name="age", dtype="int64")]},
            "missing income, city",
        ),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(
    tmp_path: Path,
    classifier: Pipeline,
    frame: pd.DataFrame,
    kwargs: dict[str, object],
    match: str,
) -> None:
    if kwargs.get("input_example") == "frame":
        kwargs["input_example"] = frame
    with pytest.raises(RegistryError, match=match):
        save_model(classifier, tmp_path / "pkg", project_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_unfitted_and_foreign_models_are_refused(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(RegistryError, match="LogisticRegression is not fitted"):
        save_model(LogisticRegression(), tmp_path / "a", input_example=frame)
    with pytest.raises(RegistryError, match="no flavor accepts it"):
        save_model({"weights": [1, 2]}, tmp_path / "b", input_example=frame)
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_cannot_be_loaded_back_is_not_packaged(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = Pipeline([("f", Fragile()), ("lr", LogisticRegression())]).fit(df, [0, 1, 1])
    with pytest.raises(RegistryError, match=r"cannot be loaded back: .*RuntimeError"):
        save_model(
            model,
            tmp_path / "pkg",
            input_example=df,
            project_dir=tmp_path,
            trusted_types=["tests.registry.custom_types.Fragile"],
        )
    assert list(tmp_path.iterdir()) == []


def test_a_function_step_is_not_trusted_by_default(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = Pipeline(
        [("f", FunctionTransformer(lambda v: v + 1)), ("lr", LogisticRegression())]
    ).fit(df, [0, 1, 1])
    with pytest.raises(UntrustedTypeError, match=r"not trusted: 'tests\.registry\..*<lambda>'"):
        save_model(model, tmp_path / "pkg", input_example=df, project_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_target_folder_must_be_empty(
    tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    target = tmp_path / "pkg"
    target.mkdir()
    save_model(classifier, target, input_example=frame, project_dir=tmp_path)  # empty: fine
    with pytest.raises(RegistryError, match="exists and is not empty"):
        save_model(classifier, target, input_example=frame, project_dir=tmp_path)


DOUBLER = "tests.registry.custom_types.Doubler"


def test_custom_types_need_explicit_trust(tmp_path: Path, frame: pd.DataFrame) -> None:
    X = frame[["age", "income"]]
    model = Pipeline([("double", Doubler()), ("scale", StandardScaler())]).fit(X)
    with pytest.raises(UntrustedTypeError, match=f"not trusted: {DOUBLER}$") as err:
        save_model(model, tmp_path / "pkg", input_example=X, project_dir=tmp_path)
    assert "trusted_types" in (err.value.hint or "")
    assert list(tmp_path.iterdir()) == []

    meta = save_model(
        model, tmp_path / "pkg", input_example=X, project_dir=tmp_path, trusted_types=[DOUBLER]
    ).metadata
    assert meta.trusted_types == [DOUBLER]
    assert meta.extra_trusted_types == [DOUBLER]
    assert meta.signature.output.kind == "other"
    # The folder's own record does not make its types trusted on load.
    with pytest.raises(UntrustedTypeError, match=DOUBLER):
        load_model_dir(tmp_path / "pkg")
    loaded, _ = load_model_dir(tmp_path / "pkg", trusted_types=[DOUBLER])
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


def test_the_project_can_trust_types_in_opsloop_yaml(tmp_path: Path, frame: pd.DataFrame) -> None:
    X = frame[["age", "income"]]
    model = Pipeline([("double", Doubler()), ("scale", StandardScaler())]).fit(X)
    (tmp_path / "opsloop.yaml").write_text(f"project: p\nsecurity:\n  trusted_types: [{DOUBLER}]\n")
    meta = save_model(model, tmp_path / "pkg", input_example=X, project_dir=tmp_path).metadata
    assert meta.extra_trusted_types == [DOUBLER]
    assert (tmp_path / "pkg" / "MLmodel").read_text().count(DOUBLER) == 2


@pytest.fixture
def packaged(tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame) -> Path:
    return save_model(classifier, tmp_path / "pkg", input_example=frame, project_dir=tmp_path).path


def test_tampered_model_file_is_refused(packaged: Path) -> None:
    data = bytearray((packaged / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (packaged / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.skops: content does not match its digest"):
        load_model_dir(packaged)
    with pytest.raises(ModelLoadError, match="does not match its digest"):
        verify_model_dir(packaged)


def test_tampered_input_example_is_refused(packaged: Path) -> None:
    pd.DataFrame({"age": [1]}).to_parquet(packaged / "input_example.parquet")
    with pytest.raises(ModelLoadError, match=r"input_example\.parquet: content does not match"):
        load_model_dir(packaged)


def test_untrusted_type_in_a_consistent_folder_is_refused(
    packaged: Path, frame: pd.DataFrame
) -> None:
    # An attacker who rewrites the digests too: the type check still stops the load.
    X = frame[["age", "income"]]
    evil = Pipeline([("double", Doubler()), ("lr", LogisticRegression())]).fit(X, [0, 1] * 120)
    data = sio.dumps(evil)
    (packaged / "model.skops").write_bytes(data)
    meta = yaml.safe_load((packaged / METADATA_FILE).read_text())
    _rewrite_metadata(packaged, files={**meta["files"], "model.skops": digest_bytes(data)})
    with pytest.raises(UntrustedTypeError, match=r"tests\.registry\.custom_types\.Doubler") as info:
        load_model_dir(packaged)
    assert info.value.hint is not None
    with pytest.raises(UntrustedTypeError, match="not trusted"):
        verify_model_dir(packaged)
    # Claiming the type as trusted in MLmodel changes nothing: MLmodel is not an authority.
    _rewrite_metadata(packaged, trusted_types=[DOUBLER], extra_trusted_types=[DOUBLER])
    with pytest.raises(UntrustedTypeError, match=DOUBLER):
        verify_model_dir(packaged)


@pytest.mark.parametrize("name", ["model.pkl", "weights.joblib", "model.bin"])
def test_pickle_files_are_refused(packaged: Path, classifier: Pipeline, name: str) -> None:
    (packaged / name).write_bytes(pickle.dumps(classifier, protocol=4))
    with pytest.raises(ModelLoadError, match=f"holds pickle files \\({name}\\)") as info:
        load_model_dir(packaged)
    assert "skops" in (info.value.hint or "")


def test_pickle_folder_without_mlmodel_is_refused_as_pickle(
    tmp_path: Path, classifier: Pipeline
) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(classifier))
    with pytest.raises(ModelLoadError, match="never loads pickles"):
        load_model_dir(folder)


def test_unlisted_and_missing_files_are_refused(packaged: Path) -> None:
    (packaged / "notes.txt").write_text("added later")
    with pytest.raises(ModelLoadError, match=r"not listed in MLmodel.*notes\.txt"):
        load_model_dir(packaged)
    (packaged / "notes.txt").unlink()
    (packaged / "input_example.parquet").unlink()
    with pytest.raises(ModelLoadError, match=r"missing: \['input_example\.parquet'\]"):
        load_model_dir(packaged)


def test_mlmodel_problems_name_file_and_field(packaged: Path, tmp_path: Path) -> None:
    _rewrite_metadata(packaged, format_version=99)
    with pytest.raises(ModelLoadError, match="field 'format_version': 99 is not supported"):
        read_metadata(packaged)
    _rewrite_metadata(packaged, format_version=1, metrics={"acc": "high"})
    with pytest.raises(ModelLoadError, match=r"MLmodel: field 'metrics\.acc'"):
        read_metadata(packaged)
    (packaged / METADATA_FILE).write_text("flavor: [unclosed\n")
    with pytest.raises(ModelLoadError, match=r"MLmodel:\d+: not valid YAML"):
        read_metadata(packaged)
    (packaged / METADATA_FILE).unlink()
    with pytest.raises(ModelLoadError, match="has no MLmodel file"):
        read_metadata(packaged)
    with pytest.raises(ModelLoadError, match="is not a folder"):
        load_model_dir(tmp_path / "nowhere")


def test_unknown_flavor_is_refused(packaged: Path) -> None:
    _rewrite_metadata(packaged, flavor="onnx-next")
    with pytest.raises(ModelLoadError, match="unknown model flavor 'onnx-next'"):
        load_model_dir(packaged)


def test_git_commit_and_dirty_flag_are_recorded(
    tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('train')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")

    clean = save_model(classifier, tmp_path / "clean", input_example=frame, project_dir=repo)
    assert clean.metadata.git_commit == head
    assert clean.metadata.git_dirty is False

    (repo / "train.py").write_text("print('changed')\n")
    dirty = save_model(classifier, tmp_path / "dirty", input_example=frame, project_dir=repo)
    assert dirty.metadata.git_commit == head
    assert dirty.metadata.git_dirty is True
