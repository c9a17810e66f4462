"""register_model / load_model against a real SQLite store and a file artifact store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import opsloop.registry as registry
from opsloop.artifacts import ArtifactStore
from opsloop.context import Project
from opsloop.errors import (
    InvalidRequestError,
    ModelLoadError,
    NotFoundError,
    RegistryError,
    TrackingError,
    UntrustedTypeError,
)
from opsloop.registry import (
    LoadedModel,
    delete_alias,
    get_model,
    get_model_version,
    list_model_versions,
    list_models,
    load_model,
    register_model,
    save_model,
    set_alias,
    update_model,
    update_model_version,
)
from opsloop.serve.base import ServableModel
from opsloop.store import Store
from opsloop.tracking import start_run
from tests.public_names import check_export
from tests.registry.custom_types import Doubler, Fragile

Stores = tuple[Store, ArtifactStore]


def test_exports_are_importable() -> None:
    for name in registry.__all__:
        check_export(registry, name)


def test_register_and_load_round_trip(
    stores: Stores, tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    info = register_model(
        "churn",
        classifier,
        input_example=frame,
        metrics={"accuracy": 0.9},
        description="first cut",
        tags={"team": "growth"},
        dataset_digest="sha256:" + "d" * 64,
        details={"owner": "ana"},
        store=store,
        artifacts=artifacts,
    )
    assert (info.model_name, info.version, info.uri) == ("churn", 1, "models:/churn/1")
    assert info.description == "first cut"
    assert info.tags == {"team": "growth"}
    assert info.dataset_digest == "sha256:" + "d" * 64
    assert info.details["owner"] == "ana"
    assert info.details["package"]["flavor"] == "sklearn"
    assert info.details["package"]["metrics"] == {"accuracy": 0.9}
    assert [c["name"] for c in info.details["package"]["signature"]["inputs"]] == [
        "age",
        "income",
        "city",
    ]
    assert info.source == "python:sklearn.pipeline.Pipeline"
    manifest = artifacts.get_manifest(info.artifact_digest)
    assert sorted(manifest.files) == ["MLmodel", "input_example.parquet", "model.skops"]

    cache = tmp_path / "cache"
    loaded = load_model("models:/churn/1", store=store, artifacts=artifacts, cache_dir=cache)
    assert isinstance(loaded, LoadedModel)
    assert isinstance(loaded, ServableModel)
    assert (loaded.name, loaded.version, loaded.uri) == ("churn", "1", "models:/churn/1")
    assert [c.name for c in loaded.signature] == ["age", "income", "city"]
    assert loaded.metadata.metrics == {"accuracy": 0.9}
    assert loaded.classes == [0, 1, 2]
    assert loaded.path == cache / info.artifact_digest.removeprefix("sha256:")
    proba = loaded.predict(frame)
    assert proba.shape == (len(frame), 3)
    np.testing.assert_array_equal(proba, classifier.predict_proba(frame))
    np.testing.assert_array_equal(loaded.predict_labels(frame), classifier.predict(frame))
    # columns are matched by name, not position
    np.testing.assert_array_equal(loaded.predict(frame[["city", "age", "income"]]), proba)
    example = loaded.input_example()
    assert example is not None
    pd.testing.assert_frame_equal(example, frame.head(5).reset_index(drop=True))
    with pytest.raises(InvalidRequestError, match="missing input columns: city") as err:
        loaded.predict(frame[["age", "income"]])
    assert err.value.field == "city"


def test_regressor_predicts_one_value_per_row(
    stores: Stores, tmp_path: Path, regressor: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    register_model("price", regressor, input_example=frame, store=store, artifacts=artifacts)
    loaded = load_model(
        "models:/price/latest", store=store, artifacts=artifacts, cache_dir=tmp_path
    )
    assert loaded.classes is None
    out = loaded.predict(frame)
    assert out.shape == (len(frame),)
    np.testing.assert_allclose(out, regressor.predict(frame))


def test_default_project_and_cache_location(
    project: Project, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    info = register_model("churn", classifier, input_example=frame)
    loaded = load_model("models:/churn/1")
    cached = project.dir / ".opsloop" / "cache" / "models" / info.artifact_digest[7:]
    assert loaded.path == cached
    assert (cached / "MLmodel").is_file()
    assert [m.name for m in list_models()] == ["churn"]
    # the project is a plain folder, not a Git repository
    assert info.details["package"]["git_commit"] is None


def test_cached_copy_is_reused_and_a_tampered_one_fetched_again(
    stores: Stores, tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    register_model("churn", classifier, input_example=frame, store=store, artifacts=artifacts)
    cache = tmp_path / "cache"
    first = load_model("models:/churn/1", store=store, artifacts=artifacts, cache_dir=cache)
    model_file = first.path / "model.skops"
    stamp = model_file.stat().st_mtime_ns
    load_model("models:/churn/1", store=store, artifacts=artifacts, cache_dir=cache)
    assert model_file.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.path.name]

    model_file.write_bytes(b"PK not a model")
    again = load_model("models:/churn/1", store=store, artifacts=artifacts, cache_dir=cache)
    np.testing.assert_array_equal(again.predict(frame), classifier.predict_proba(frame))


def test_versions_are_numbered_per_model(
    stores: Stores, classifier: Pipeline, regressor: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    kw: dict[str, Any] = {"input_example": frame, "store": store, "artifacts": artifacts}
    assert register_model("churn", classifier, **kw).version == 1
    assert register_model("churn", classifier, **kw).version == 2
    assert register_model("price", regressor, **kw).version == 1
    assert register_model("churn", classifier, **kw).version == 3
    assert [v.version for v in list_model_versions("churn", store=store)] == [3, 2, 1]
    assert [m.name for m in list_models(store=store)] == ["churn", "price"]
    assert get_model("churn", store=store).latest_version == 3
    assert get_model_version("price", 1, store=store).model_name == "price"


def test_aliases_set_move_delete_and_load_by_uri(
    stores: Stores, tmp_path: Path, classifier: Pipeline, regressor: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    kw: dict[str, Any] = {"input_example": frame, "store": store, "artifacts": artifacts}
    register_model("m", classifier, alias="prod", **kw)
    register_model("m", regressor, **kw)

    def load(uri: str) -> LoadedModel:
        return load_model(uri, store=store, artifacts=artifacts, cache_dir=tmp_path / "c")

    assert get_model("m", store=store).aliases == {"prod": 1}
    assert load("models:/m@prod").version == "1"
    assert load("models:/m/latest").version == "2"
    assert load("models:/m/2").metadata.signature.output.kind == "regressor"

    assert set_alias("m", "prod", 2, store=store) == 1
    assert set_alias("m", "canary", 1, store=store) is None
    assert load("models:/m@prod").version == "2"
    assert get_model_version("m", 1, store=store).aliases == ["canary"]

    with pytest.raises(TrackingError, match="cannot be a number"):
        set_alias("m", "7", 1, store=store)
    delete_alias("m", "prod", store=store)
    assert get_model("m", store=store).aliases == {"canary": 1}
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        load("models:/m@prod")
    with pytest.raises(NotFoundError, match="has no version 3"):
        load("models:/m/3")


def test_tags_and_descriptions(stores: Stores, classifier: Pipeline, frame: pd.DataFrame) -> None:
    store, artifacts = stores
    register_model(
        "m",
        classifier,
        input_example=frame,
        description="v1",
        tags={"stage": "dev"},
        store=store,
        artifacts=artifacts,
    )
    model = update_model("m", description="churn model", tags={"owner": "ana"}, store=store)
    assert (model.description, model.tags) == ("churn model", {"owner": "ana"})
    version = update_model_version(
        "m", 1, description="v1, checked", tags={"stage": "qa", "ok": "yes"}, store=store
    )
    assert version.description == "v1, checked"
    assert version.tags == {"stage": "qa", "ok": "yes"}
    kinds = [e.kind for e in store.events.list(object_type="model_version")]
    assert kinds == ["model_version.created", "model_version.updated"]


def _assert_nothing_registered(store: Store) -> None:
    assert store.models.list() == []
    assert store.events.list(kind="model*") == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "bad name!"}, RegistryError, "invalid model name"),
        ({"alias": "42"}, RegistryError, "cannot be a number"),
        ({"run_id": "no-such-run"}, NotFoundError, "no-such-run"),
        ({"details": {"package": 1}}, RegistryError, "reserved"),
        ({"metrics": {"auc": "n/a"}}, RegistryError, "metric 'auc'"),
        ({"input_example": None}, RegistryError, "needs an input signature"),
    ],
)
def test_refused_registrations_leave_nothing(
    stores: Stores,
    classifier: Pipeline,
    frame: pd.DataFrame,
    kwargs: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    store, artifacts = stores
    args: dict[str, object] = {"name": "m", "input_example": frame, **kwargs}
    name = args.pop("name")
    with pytest.raises(error, match=match):
        register_model(name, classifier, store=store, artifacts=artifacts, **args)  # type: ignore[arg-type]
    _assert_nothing_registered(store)


def test_failure_inside_packaging_leaves_no_version(
    stores: Stores, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    register_model("m", classifier, input_example=frame, store=store, artifacts=artifacts)
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    broken = Pipeline([("f", Fragile()), ("lr", LogisticRegression())]).fit(df, [0, 1, 1])
    trusted = ["tests.registry.custom_types.Fragile"]
    with pytest.raises(RegistryError, match="cannot be loaded back"):
        register_model(
            "m",
            broken,
            input_example=df,
            alias="prod",
            trusted_types=trusted,
            store=store,
            artifacts=artifacts,
        )
    with pytest.raises(RegistryError, match="cannot be loaded back"):
        register_model(
            "other",
            broken,
            input_example=df,
            trusted_types=trusted,
            store=store,
            artifacts=artifacts,
        )
    lambda_step = Pipeline(
        [("f", FunctionTransformer(lambda v: v * 3)), ("lr", LogisticRegression())]
    ).fit(df, [0, 1, 1])
    with pytest.raises(
        UntrustedTypeError, match=r"not trusted: 'tests\.registry\.test_api\.<lambda>'"
    ):
        register_model("m", lambda_step, input_example=df, store=store, artifacts=artifacts)
    assert [v.version for v in list_model_versions("m", store=store)] == [1]
    assert get_model("m", store=store).aliases == {}
    assert [m.name for m in list_models(store=store)] == ["m"]


def test_register_a_packaged_folder(
    stores: Stores, tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    run = store.runs.create("train", project="p")
    folder = save_model(
        classifier, tmp_path / "pkg", input_example=frame, run_id=run.id, project_dir=tmp_path
    ).path
    info = register_model("m", path=folder, store=store, artifacts=artifacts)
    assert info.source == str(folder.resolve())
    assert info.run_id == run.id
    loaded = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(loaded.predict(frame), classifier.predict_proba(frame))

    with pytest.raises(RegistryError, match="either a model or the path"):
        register_model("m", classifier, path=folder, store=store, artifacts=artifacts)
    with pytest.raises(RegistryError, match="pass them to save_model"):
        register_model("m", path=folder, metrics={"a": 1.0}, store=store, artifacts=artifacts)


def test_tampered_folder_is_not_registered(
    stores: Stores, tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    folder = save_model(
        classifier, tmp_path / "pkg", input_example=frame, project_dir=tmp_path
    ).path
    (folder / "model.skops").write_bytes((folder / "model.skops").read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="does not match its digest"):
        register_model("m", path=folder, store=store, artifacts=artifacts)
    _assert_nothing_registered(store)


def test_load_a_local_folder_without_a_store(
    tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    folder = save_model(
        classifier, tmp_path / "pkg", input_example=frame, project_dir=tmp_path
    ).path
    for uri in (folder, str(folder), folder.as_uri()):
        loaded = load_model(uri)
        assert (loaded.name, loaded.version, loaded.info) == ("pkg", "local", None)
        np.testing.assert_array_equal(loaded.predict(frame), classifier.predict_proba(frame))
    shutil.rmtree(folder)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_model(folder)


def test_active_run_is_linked(project: Project, classifier: Pipeline, frame: pd.DataFrame) -> None:
    with start_run("train") as run:
        info = register_model("m", classifier, input_example=frame)
    assert info.run_id == run.id
    loaded = load_model("models:/m/1")
    assert loaded.metadata.run_id == run.id
    assert register_model("m", classifier, input_example=frame).run_id is None


DOUBLER = "tests.registry.custom_types.Doubler"


def test_extra_trust_is_explicit_recorded_and_audited(
    stores: Stores, tmp_path: Path, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    X = frame[["age", "income"]]
    model = Pipeline([("double", Doubler()), ("lr", LogisticRegression())]).fit(X, [0, 1] * 120)
    with pytest.raises(UntrustedTypeError, match=DOUBLER):
        register_model("m", model, input_example=X, store=store, artifacts=artifacts)
    _assert_nothing_registered(store)

    info = register_model(
        "m",
        model,
        input_example=X,
        trusted_types=[DOUBLER, "mypkg.unused.Type"],
        store=store,
        artifacts=artifacts,
    )
    # Only what the model needs is recorded: on the version, in MLmodel and as an event.
    assert info.details["package"]["extra_trusted_types"] == [DOUBLER]
    (event,) = store.events.list(kind="model_version.trusted_types")
    assert (event.actor, event.object_type, event.object_id) == ("tester", "model_version", "m/1")
    assert event.details == {"types": [DOUBLER], "sources": {DOUBLER: "trusted_types argument"}}
    cache = tmp_path / "cache"
    loaded = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    assert loaded.metadata.extra_trusted_types == [DOUBLER]
    np.testing.assert_array_equal(loaded.predict(X), model.predict_proba(X))

    # The fetched folder, loaded as a plain folder, gets no trust from its own MLmodel, and
    # registering it again needs the trust again.
    with pytest.raises(UntrustedTypeError, match=DOUBLER):
        load_model(loaded.path)
    with pytest.raises(UntrustedTypeError, match=DOUBLER):
        register_model("m2", path=loaded.path, store=store, artifacts=artifacts)
    again = register_model(
        "m2", path=loaded.path, trusted_types=[DOUBLER], store=store, artifacts=artifacts
    )
    assert again.artifact_digest == info.artifact_digest
    assert len(store.events.list(kind="model_version.trusted_types")) == 2


def test_a_model_without_extra_trust_writes_no_trust_event(
    stores: Stores, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    info = register_model("m", classifier, input_example=frame, store=store, artifacts=artifacts)
    assert info.details["package"]["extra_trusted_types"] == []
    assert store.events.list(kind="model_version.trusted_types") == []


def test_a_folder_changed_during_registration_is_refused(
    stores: Stores, tmp_path: Path, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    store, artifacts = stores
    folder = save_model(
        classifier, tmp_path / "pkg", input_example=frame, project_dir=tmp_path
    ).path

    class Racing(type(artifacts)):  # type: ignore[misc]
        def put_dir(self, path: Path) -> str:
            (path / "input_example.parquet").write_bytes(b"changed after the checks")
            return super().put_dir(path)

    racing = Racing(artifacts.url)
    with pytest.raises(ModelLoadError, match="changed while it was being registered"):
        register_model("m", path=folder, store=store, artifacts=racing)
    _assert_nothing_registered(store)
