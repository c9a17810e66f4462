"""Attacks on the pipeline cache: a step output naming code to run is neither stored nor loaded.

A cached step output is loaded again by later runs (and by teammates sharing the artifact
store), so it is checked against the registry's one allow-list like a registered model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from opsloop.artifacts import open_artifact_store
from opsloop.errors import MaterializerError
from opsloop.pipeline import load_value, save_value
from opsloop.pipeline.materializers import META_FILE


def _evil() -> Pipeline:
    return Pipeline(
        [
            ("a", FunctionTransformer(np.squeeze)),
            ("b", FunctionTransformer(os.system)),
            ("c", FunctionTransformer(np.atleast_1d)),
        ]
    )


def test_a_step_output_that_calls_os_system_is_not_stored(tmp_path: Path, project) -> None:
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    with pytest.raises(MaterializerError, match=r"system"):
        save_value(_evil(), artifacts, step="s", output="o")


def test_a_cached_output_swapped_for_one_that_calls_os_system_does_not_load(
    tmp_path: Path, project
) -> None:
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    good = StandardScaler().fit([[1.0], [2.0]])
    digest = save_value(good, artifacts, step="s", output="o")
    folder = tmp_path / "out"
    artifacts.get_dir(digest, folder)
    marker = tmp_path / "ran"
    (folder / "model.skops").write_bytes(sio.dumps(_evil()))
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps(meta))
    forged = artifacts.put_dir(folder)
    with pytest.raises(MaterializerError, match=r"can never be trusted: .*system"):
        load_value(forged, artifacts)
    assert not marker.exists()
