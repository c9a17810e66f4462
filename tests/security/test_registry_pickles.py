"""Pickles of every protocol are found in a model folder, whatever their name; ordinary files
(text, CSV, JSON, YAML, Parquet, skops, npy) are not taken for pickles."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml

from opsloop.artifacts import digest_bytes
from opsloop.errors import ModelLoadError
from opsloop.registry import METADATA_FILE, load_model_dir, save_model
from opsloop.registry.packaging import PICKLE_SCAN_BYTES, find_pickles, is_pickle
from tests.registry.forge import CMD, benign_model


class RunsACommand:
    """Unpickling this runs ``touch``: the classic payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _payloads(tmp_path: Path) -> dict[str, object]:
    return {
        "payload": RunsACommand(tmp_path / "pwned"),
        "estimator": benign_model(),
        "dict": {"weights": [1.5, 2.5], "name": "m", "nested": ({1, 2}, None, True)},
        "none": None,
        "text": "just a string",
        "big": list(range(40_000)),  # protocol 0 of this is larger than the scan window
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("what", ["payload", "estimator", "dict", "none", "text", "big"])
def test_pickles_of_every_protocol_are_detected(tmp_path: Path, protocol: int, what: str) -> None:
    data = pickle.dumps(_payloads(tmp_path)[what], protocol=protocol)
    if what == "big" and protocol == 0:
        assert len(data) > PICKLE_SCAN_BYTES
    assert is_pickle(data)
    # Trailing bytes after STOP do not hide a pickle: pickle.load stops at STOP.
    assert is_pickle(data + b"\n# trailing notes\n")
    (tmp_path / "f.dat").write_bytes(data)
    assert find_pickles(tmp_path) == ["f.dat"]


@pytest.mark.parametrize("protocol", [0, 1])
@pytest.mark.parametrize("name", ["model.bin", "notes.txt", "weights.dat", "MLmodel.bak"])
def test_a_model_folder_holding_an_old_protocol_pickle_is_refused(
    tmp_path: Path, protocol: int, name: str
) -> None:
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    data = pickle.dumps(RunsACommand(tmp_path / "pwned"), protocol=protocol)
    (folder / name).write_bytes(data)
    # Listed in MLmodel with its digest, as an attacker would do.
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw["files"][name] = digest_bytes(data)
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw))
    assert find_pickles(folder) == [name]
    with pytest.raises(ModelLoadError, match=f"holds pickle files \\({name}\\)"):
        load_model_dir(folder)
    assert not (tmp_path / "pwned").exists()


def _hidden_behind_a_long_argument(marker: Path, protocol: int) -> bytes:
    # A harmless first value longer than any scan window, popped, then the payload.
    payload = pickle.dumps(RunsACommand(marker), protocol=protocol)
    if protocol == 0:
        return b"V" + b"x" * (2 * PICKLE_SCAN_BYTES) + b"\n0" + payload
    filler = b"x" * (2 * PICKLE_SCAN_BYTES)
    return b"X" + len(filler).to_bytes(4, "little") + filler + b"0" + payload


@pytest.mark.parametrize("protocol", [0, 1])
def test_a_pickle_hidden_behind_a_long_first_value_is_refused(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    data = _hidden_behind_a_long_argument(marker, protocol)
    assert not is_pickle(data[:PICKLE_SCAN_BYTES])  # its start alone proves nothing
    assert is_pickle(data)
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    (folder / "notes.txt").write_bytes(data)
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw["files"]["notes.txt"] = digest_bytes(data)
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelLoadError, match=r"holds pickle files \(notes\.txt\)"):
        load_model_dir(folder)
    pickle.loads(data)  # the premise: unpickling it runs the command
    assert marker.exists()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.txt", "hello\n")
    return out.getvalue()


def _parquet(tmp_path: Path) -> bytes:
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_parquet(tmp_path / "x.parquet")
    return (tmp_path / "x.parquet").read_bytes()


def _npy() -> bytes:
    out = io.BytesIO()
    np.save(out, np.arange(10.0))
    return out.getvalue()


def _ordinary(tmp_path: Path) -> dict[str, bytes]:
    meta = yaml.safe_dump({"format_version": 1, "flavor": "sklearn", "files": {"a": "b"}})
    return {
        "empty": b"",
        "text": b"This model predicts churn.\nIt was trained in 2024.\n",
        "markdown": b"# Model card\n\n(1) trained on 10,000 rows.\n",
        "csv": b"age,income,city\n30,61.5,paris\n52,38.0,nice\n",
        "json": json.dumps({"thresholds": [0.5, 0.7], "labels": ["a", "b"]}).encode(),
        "yaml": meta.encode(),
        "parquet": _parquet(tmp_path),
        "skops": sio.dumps(benign_model()),
        "zip": _zip(),
        "npy": _npy(),
        "numbers": b"1\n2\n3\n",
        "python": b"import os\nprint(os.getcwd())\n",
        "binary": bytes(range(256)) * 4,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty", "text", "markdown", "csv", "json", "yaml", "parquet", "skops", "zip", "npy",
        "numbers", "python", "binary",
    ],
)  # fmt: skip
def test_ordinary_files_are_not_taken_for_pickles(tmp_path: Path, kind: str) -> None:
    data = _ordinary(tmp_path)[kind]
    assert not is_pickle(data)
    (tmp_path / "f").write_bytes(data)
    assert find_pickles(tmp_path) == []


def test_parquet_files_whose_data_looks_like_opcodes_are_not_pickles(tmp_path: Path) -> None:
    # Parquet stores strings with a length prefix: "\n." inside one must not read as STOP.
    frame = pd.DataFrame({"s": ["\n.", "N.", "(lp0\n.", "I1\n."], "n": [1, 2, 3, 4]})
    frame.to_parquet(tmp_path / "x.parquet")
    assert not is_pickle((tmp_path / "x.parquet").read_bytes())


def test_a_packaged_folder_has_no_pickle(tmp_path: Path) -> None:
    frame = pd.DataFrame({"cmd": ["a", "b", "a", "c", "b"]})
    folder = save_model(benign_model(), tmp_path / "pkg", input_example=frame).path
    assert find_pickles(folder) == []
    load_model_dir(folder)
