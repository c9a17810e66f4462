"""Batch scoring (opsloop predict): parts, bounded batches, lineage, and the same
predictions whatever the number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from opsloop.cli.main import app
from opsloop.context import Project
from opsloop.errors import ConfigError, DataError
from opsloop.registry import load_model, register_model
from opsloop.serve.batch import plan_parts, predict_batch


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"id": np.arange(n) + seed * 1_000_000, "a": rng.normal(size=n), "b": rng.normal(size=n)}
    )


@pytest.fixture
def scored(project: Project, tmp_path: Path) -> tuple[Project, Path]:
    train = _frame(500, 0)
    y = (train["a"] + train["b"] > 0).astype(int)
    model = LogisticRegression().fit(train[["a", "b"]], y)
    register_model("clf", model, input_example=train[["a", "b"]].head(5), alias="champion")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        pq.write_table(
            pa.Table.from_pandas(_frame(2_000, i + 1)), data / f"f{i}.parquet", row_group_size=500
        )
    return project, data


def _read(out: Path) -> pd.DataFrame:
    parts = sorted(out.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts]).sort_values("id").reset_index(drop=True)


def test_workers_give_the_same_predictions_and_a_run_records_lineage(
    scored: tuple[Project, Path], tmp_path: Path
) -> None:
    proj, data = scored
    model = load_model("models:/clf@champion")
    one = predict_batch(
        model,
        str(data / "*.parquet"),
        tmp_path / "one",
        store=proj.store,
        keep=["id"],
        batch_rows=300,
    )
    two = predict_batch(
        model,
        str(data / "*.parquet"),
        tmp_path / "two",
        store=proj.store,
        workers=2,
        keep=["id"],
        batch_rows=300,
    )
    assert one.rows == two.rows == 6_000
    a, b = _read(tmp_path / "one"), _read(tmp_path / "two")
    pd.testing.assert_frame_equal(a, b)
    frame = pd.concat([_frame(2_000, i + 1) for i in range(3)]).sort_values("id")
    expected = model.model.predict(frame[["a", "b"]])
    assert (a["prediction"].to_numpy() == expected).all()
    # Row groups of 500 rows and batches of 300: no output row group is bigger than a batch.
    meta = pq.ParquetFile(one.parts[0]).metadata
    assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 300
    run = proj.store.runs.get(two.run_id)
    assert run.kind == "batch_predict" and run.status == "finished"
    assert run.params["model"] == "models:/clf/1"
    inputs = run.params["inputs"]
    inputs = json.loads(inputs) if isinstance(inputs, str) else inputs
    assert [Path(i["path"]).name for i in inputs] == [
        "f0.parquet",
        "f1.parquet",
        "f2.parquet",
    ]
    assert run.tags["rows"] in (6_000, "6000")


def test_parts_are_whole_row_groups_and_spread_over_workers(
    scored: tuple[Project, Path], tmp_path: Path
) -> None:
    _, data = scored
    files = sorted(str(p) for p in data.glob("*.parquet"))
    parts = plan_parts(files, tmp_path, workers=3, batch_rows=100)
    assert sum(p.rows for p in parts) == 6_000
    assert len(parts) >= 6
    assert len({(p.path, g) for p in parts for g in p.row_groups}) == 12


def test_bad_input_is_refused_before_anything_is_written(
    scored: tuple[Project, Path], tmp_path: Path
) -> None:
    proj, data = scored
    model = load_model("models:/clf@champion")
    with pytest.raises(ConfigError, match="no Parquet file matches"):
        predict_batch(model, str(tmp_path / "none/*.parquet"), tmp_path / "o", store=proj.store)
    pq.write_table(pa.table({"a": [1.0]}), data / "z.parquet")
    with pytest.raises(DataError, match="missing input columns: b"):
        predict_batch(model, str(data / "*.parquet"), tmp_path / "o2", store=proj.store)
    failed = proj.store.runs.list(kind="batch_predict")
    assert [r.status for r in failed] == ["failed"]


def test_predict_command(scored: tuple[Project, Path], tmp_path: Path) -> None:
    _, data = scored
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "models:/clf@champion",
            "--input",
            str(data / "*.parquet"),
            "--output",
            str(out),
            "--workers",
            "2",
            "--keep",
            "id",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scored 6,000 rows" in result.output
    assert len(_read(out)) == 6_000
