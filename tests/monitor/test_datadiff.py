"""Data diff: schema changes, rows by key, distribution shift, recorded versions, the report."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from opsloop.cli.main import main
from opsloop.context import Project
from opsloop.errors import DataError, NotFoundError
from opsloop.monitor.datadiff import dataset_versions, diff_frames, load_dataset
from opsloop.monitor.diff_report import render_diff
from opsloop.pipeline import run_pipeline

from ..pipeline import lineage_steps_fixture as lf


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 600
    old = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.normal(100, 10, n),
            "steady": rng.normal(0, 1, n),
            "kind": rng.choice(["a", "b", "c"], n),
            "legacy": 1,
        }
    )
    new = old.copy()
    new = new[new["id"] >= 20]  # 20 removed
    extra = old.iloc[:30].assign(id=np.arange(n, n + 30))  # 30 added
    new = pd.concat([new, extra], ignore_index=True)
    new["amount"] = new["amount"] + 25.0  # every amount shifts
    new.loc[new["id"].isin([100, 101, 102]), "kind"] = "z"  # three kinds change
    new = new.drop(columns="legacy").assign(channel="web")
    new["steady"] = new["steady"].astype("float32")
    return old, new


def test_diff_by_key_counts_rows_schema_and_shift() -> None:
    old, new = frames()
    diff = diff_frames(old, new, key=["id"], old_label="v1", new_label="v2")

    assert (diff.old_rows, diff.new_rows) == (600, 610)
    changes = {(c.column, c.change): (c.old_type, c.new_type) for c in diff.schema_changes}
    assert changes == {
        ("legacy", "removed"): ("int64", None),
        ("channel", "added"): (None, str(new["channel"].dtype)),
        ("steady", "type"): ("float64", "float32"),
    }
    rows = diff.rows
    assert (rows.added, rows.removed) == (30, 20)
    # Every kept row changed its amount; "steady" only in float32 rounding.
    assert rows.changed == 580 and rows.unchanged == 0
    assert rows.changed_by_column["amount"] == 580
    assert rows.changed_by_column["kind"] == 3
    assert rows.added_keys[:3] == [600, 601, 602] and rows.removed_keys[:2] == [0, 1]
    example = rows.changed_examples[0]
    assert example["column"] == "amount" and example["new"] == pytest.approx(example["old"] + 25)

    assert set(diff.shift) == {"amount", "steady", "kind"}
    assert diff.shift["amount"].drift_detected and diff.shift["amount"].psi > 1
    assert not diff.shift["steady"].drift_detected
    assert diff.shift["steady"].ks_statistic < 0.1
    assert not diff.shift["kind"].drift_detected
    assert diff.n_drifted == 1 and not diff.identical


def test_without_a_key_rows_are_compared_whole() -> None:
    old = pd.DataFrame({"a": [1, 2, 3, 3], "b": ["x", "y", "z", "z"]})
    new = pd.DataFrame({"a": [3, 1, 4], "b": ["z", "x", "w"]})
    rows = diff_frames(old, new).rows
    assert (rows.added, rows.removed, rows.unchanged, rows.changed) == (1, 2, 2, None)
    same = diff_frames(old, old.sample(frac=1, random_state=1))
    assert same.identical


def test_keys_must_exist_and_be_unique() -> None:
    old = pd.DataFrame({"id": [1, 1, 2], "v": [1, 2, 3]})
    with pytest.raises(DataError, match=r"key id is not unique in old: 2 rows share a key"):
        diff_frames(old, old.drop_duplicates("id"), key=["id"])
    with pytest.raises(DataError, match=r"key column 'nope' is not in old; its columns: id, v"):
        diff_frames(old, old, key=["nope"])


def test_versions_of_a_step_output_resolve_by_number_name_and_digest(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_pipeline(lf.orders, {"rows": 8}, executor="inline", progress=False)
    run_pipeline(lf.orders, {"rows": 8}, executor="inline", progress=False)  # cached: same
    second = run_pipeline(lf.orders, {"rows": 11}, executor="inline", progress=False)
    versions = dataset_versions(project.store, "orders.load.data")
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].digest == first.output_digest("load", "data")
    assert versions[1].digest == second.output_digest("load", "data")

    where = {"store": project.store, "artifacts": project.artifacts, "base_dir": project.dir}
    label, frame = load_dataset("orders.load.data@v1", **where)
    assert label == "orders.load.data@v1" and len(frame) == 8
    assert len(load_dataset("orders.load.data@latest", **where)[1]) == 11
    assert len(load_dataset("orders.load.data@previous", **where)[1]) == 8
    prefix = versions[1].digest.removeprefix("sha256:")[:10]
    assert load_dataset(f"orders.load.data@{prefix}", **where)[0] == "orders.load.data@v2"

    with pytest.raises(NotFoundError, match=r"has no version v3; it has v1 … v2"):
        load_dataset("orders.load.data@v3", **where)
    with pytest.raises(NotFoundError, match=r"no recorded versions of orders\.nope\.data"):
        load_dataset("orders.nope.data@v1", **where)
    with pytest.raises(DataError, match="is a dict, not a table"):
        load_dataset("orders.summarise.output@v1", **where)
    with pytest.raises(DataError, match="names no data set"):
        load_dataset("data@v1", **where)

    with pytest.raises(SystemExit) as done:
        main(["data", "versions", "orders.load.data"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    assert re.search(r"v1\s+│\s+sha256:", listed) and "v2" in listed and "v3" not in listed


def test_the_terminal_tables() -> None:
    old, new = frames()
    diff = diff_frames(old, new, key=["id"], old_label="v1", new_label="v2")
    titles = [str(t.title) for t in render_diff(diff)]
    assert titles == [
        "v1 → v2",
        "rows by key id",
        "schema changes",
        "changed values",
        "distribution shift (old = reference)",
    ]


def test_the_cli_diffs_two_files(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = frames()
    old.to_csv(project.dir / "march.csv", index=False)
    new.to_parquet(project.dir / "april.parquet", index=False)
    args = ["data", "diff", "march.csv", "april.parquet", "--key", "id", "--html", "d.html"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"30\s+│\s+20\s+│\s+580\s+│\s+0", out), out
    assert re.search(r"amount .* yes", out), out
    assert "report written to d.html" in out
    html = (project.dir / "d.html").read_text()
    # Rows chart, PSI chart and one chart per shared column.
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 2 + 3
    assert "<td>legacy</td>" in html and "removed" in html
    assert re.search(r'<tr class="drift"><td>amount</td>', html)

    with pytest.raises(SystemExit) as done:
        main(["data", "diff", "march.csv", "april.parquet", "--key", "nope"])
    assert done.value.code == 1
    assert "key column 'nope' is not in march.csv" in capsys.readouterr().err
