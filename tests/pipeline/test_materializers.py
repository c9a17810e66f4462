"""Materializers: round trips of every built-in type, custom ones, and refusals."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from opsloop.context import use_project
from opsloop.errors import MaterializerError
from opsloop.pipeline import (
    Materializer,
    load_output,
    load_value,
    register_materializer,
    run_pipeline,
    save_value,
    unregister_materializer,
)
from opsloop.pipeline.materializers import META_FILE, materializer_for, materializer_versions

from . import steps_fixture as sf


def roundtrip(value, artifacts):
    return load_value(save_value(value, artifacts, step="s", output="o"), artifacts)


def test_dataframe_roundtrip_keeps_index_and_dtypes(artifacts):
    df = pd.DataFrame(
        {
            "i": np.arange(5, dtype=np.int32),
            "f": np.linspace(0, 1, 5),
            "s": list("abcde"),
            "c": pd.Categorical(list("xyxyx")),
            "t": pd.date_range("2024-01-01", periods=5, tz="UTC"),
        },
        index=pd.Index([5, 4, 3, 2, 1], name="key"),
    )
    back = roundtrip(df, artifacts)
    pd.testing.assert_frame_equal(back, df)


def test_numpy_roundtrip_and_object_arrays_refused(artifacts):
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    back = roundtrip(arr, artifacts)
    assert back.dtype == np.float32 and np.array_equal(back, arr)
    with pytest.raises(MaterializerError, match=r"output 'o' of step 's'.*numpy\.npy"):
        save_value(np.array([{"a": 1}], dtype=object), artifacts, step="s", output="o")


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True], "b": {"c": "é"}}, [1, "two"], "text", 3, 2.5, True, None],
)
def test_json_values_roundtrip(value, artifacts):
    back = roundtrip(value, artifacts)
    assert back == value and type(back) is type(value)


def test_json_refuses_values_that_would_not_come_back_equal(artifacts):
    with pytest.raises(MaterializerError, match=r"value\['k'\]\[0\] is a builtins.tuple"):
        save_value({"k": [(1, 2)]}, artifacts, step="s", output="o")
    with pytest.raises(MaterializerError, match="non-string key 1"):
        save_value({1: "a"}, artifacts)


def test_sklearn_pipeline_roundtrip_with_skops(artifacts):
    X = pd.DataFrame({"num": [0.1, 0.5, 0.9, 0.3] * 5, "cat": ["a", "b", "a", "c"] * 5})
    y = [0, 1, 1, 0] * 5
    model = SkPipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", StandardScaler(), ["num"]), ("cat", OneHotEncoder(), ["cat"])]
                ),
            ),
            ("clf", RandomForestClassifier(n_estimators=5, random_state=0)),
        ]
    ).fit(X, y)
    digest = save_value(model, artifacts)
    files = artifacts.get_manifest(digest).files
    assert {"model.skops", META_FILE} == set(files)
    back = load_value(digest, artifacts)
    assert np.array_equal(back.predict(X), model.predict(X))


class ShiftEstimator(BaseEstimator):
    """An estimator skops does not know, so it must be trusted explicitly."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def fit(self, X, y=None):
        self.mean_ = float(np.mean(X))
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float).ravel() * 0 + self.mean_ + self.shift


def test_a_type_outside_the_allow_list_needs_the_project_to_trust_it(artifacts, project):
    model = ShiftEstimator(2.0).fit([[1.0], [3.0]])
    with pytest.raises(MaterializerError, match=r"not trusted: .*ShiftEstimator") as caught:
        save_value(model, artifacts)
    assert "security" in (caught.value.hint or "")

    spec = project.dir / "opsloop.yaml"
    spec.write_text(f"project: demo\nsecurity: {{trusted_types: [{__name__}.ShiftEstimator]}}\n")
    with use_project(project.dir):
        digest = save_value(model, artifacts)
        back = load_value(digest, artifacts)
    assert isinstance(back, ShiftEstimator) and back.predict([[0.0]])[0] == 4.0
    # Without the project's trust, the cached output no longer loads.
    with pytest.raises(MaterializerError, match=r"not trusted: .*ShiftEstimator"):
        load_value(digest, artifacts)


def test_all_kinds_flow_through_a_pipeline(store, artifacts):
    result = run_pipeline(
        sf.materializer_pipeline, store=store, artifacts=artifacts, progress=False
    )
    assert result.succeeded, result.error
    summary = load_output(result, "consume_every_kind")
    assert summary == {
        "frame_sum": 6,
        "array_shape": [3, 4],
        "mapping": {"k": [1, 2.5, None, True], "nested": {"s": "é"}},
        "text": "plain text",
        "number": 7,
        "flag": False,
        "nothing": None,
        "items": [1, "two", 3.0],
    }
    frame = load_output(result, "every_kind", "frame")
    assert list(frame.index) == [10, 20, 30]


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class NamedPoint(Point):
    pass


class PointMaterializer(Materializer):
    name = "test.point"
    version = 2
    types = (Point,)

    def save(self, value, folder: Path) -> None:
        (folder / "point.txt").write_text(f"{value.x},{value.y}")

    def load(self, folder: Path):
        x, y = (folder / "point.txt").read_text().split(",")
        return Point(float(x), float(y))


class OrderedMaterializer(Materializer):
    name = "test.ordered"
    types = (OrderedDict,)

    def save(self, value, folder: Path) -> None:
        (folder / "items.json").write_text(json.dumps(list(value.items())))

    def load(self, folder: Path):
        return OrderedDict(json.loads((folder / "items.json").read_text()))


@pytest.fixture
def custom():
    register_materializer(PointMaterializer)
    register_materializer(OrderedMaterializer)
    yield
    unregister_materializer(PointMaterializer.name)
    unregister_materializer(OrderedMaterializer.name)


def test_custom_materializer_is_chosen_by_type_most_specific_first(custom, artifacts):
    assert materializer_for(NamedPoint) is PointMaterializer
    # OrderedDict is a dict, but its own materializer is more specific than JSON's.
    assert materializer_for(OrderedDict) is OrderedMaterializer
    assert materializer_for(dict).name == "json"
    assert "test.point@2" in materializer_versions()
    back = roundtrip(NamedPoint(1.5, -2.0), artifacts)
    assert (back.x, back.y) == (1.5, -2.0)
    ordered = roundtrip(OrderedDict([("b", 1), ("a", 2)]), artifacts)
    assert isinstance(ordered, OrderedDict) and list(ordered) == ["b", "a"]


def test_loading_needs_the_materializer_that_wrote_it(custom, artifacts):
    digest = save_value(Point(0, 0), artifacts)
    unregister_materializer(PointMaterializer.name)
    with pytest.raises(MaterializerError, match=r"'test\.point', which is not registered"):
        load_value(digest, artifacts)


def test_unsupported_type_names_step_output_and_type(artifacts):
    with pytest.raises(MaterializerError) as info:
        save_value(Point(0, 0), artifacts, step="train", output="model")
    assert "output 'model' of step 'train'" in str(info.value)
    assert f"{__name__}.Point" in str(info.value)
    assert info.value.hint and "register_materializer" in info.value.hint


def test_registering_a_non_materializer_is_refused():
    with pytest.raises(MaterializerError, match="not a Materializer subclass"):
        register_materializer(Point)  # type: ignore[arg-type]


def test_a_plain_artifact_is_not_a_step_output(artifacts, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    folder_digest = artifacts.put_dir(tmp_path)
    with pytest.raises(MaterializerError, match="is not a step output"):
        load_value(folder_digest, artifacts)
