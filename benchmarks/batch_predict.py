"""Batch scoring: rows per second at 1 and 2 workers, and peak memory against input size.

Makes ``--rows`` rows (default 10,000,000) of four numeric features in ten Parquet files,
trains a logistic regression on a sample, registers it in a temporary opsloop project and
saves the same estimator as an MLflow model. Then, each in a process of its own (peak
resident memory of that process tree from ``wait4``):

* ``opsloop predict`` logic (:func:`opsloop.serve.batch.predict_batch`) at 1 and 2 workers
  over all rows, and at 1 worker over a tenth of them (peak memory must not grow with input);
* MLflow's pyfunc path, ``mlflow.pyfunc.load_model(...).predict`` over the same record
  batches, written to Parquet the same way. ``mlflow models predict`` reads a whole CSV or
  JSON input into one DataFrame and needs an environment manager, so it is not run on ten
  million rows; the pyfunc path is the same model code without that.

Run: ``python benchmarks/batch_predict.py [--rows N] [--executor local|ray]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from opsloop.context import open_project, set_current_project
from opsloop.registry import load_model, register_model
from opsloop.serve.batch import predict_batch

FEATURES = ["a", "b", "c", "d"]
FILES = 10


def make_data(folder: Path, rows: int) -> None:

    rng = np.random.default_rng(0)
    per = rows // FILES
    for i in range(FILES):
        n = per if i < FILES - 1 else rows - per * (FILES - 1)
        cols: dict[str, Any] = {"id": np.arange(i * per, i * per + n)}
        cols.update({f: rng.normal(size=n) for f in FEATURES})
        pq.write_table(pa.table(cols), folder / f"f{i:02d}.parquet", row_group_size=131_072)


def train(data: Path) -> tuple[LogisticRegression, Any]:
    frame = pq.read_table(data / "f00.parquet").to_pandas().head(20_000)
    y = (frame["a"] + 0.5 * frame["b"] - frame["c"] > 0).astype(int)
    return LogisticRegression().fit(frame[FEATURES], y), frame[FEATURES].head(5)


def make_models(root: Path, data: Path) -> None:
    model, _ = train(data)
    mlflow.sklearn.save_model(model, str(root / "mlflow_model"))


def register(folder: Path, data: Path) -> Any:
    """A project of its own with the same model registered (same data, so identical)."""
    model, example = train(data)
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: bench\n")
    proj = open_project(folder)
    set_current_project(proj)
    register_model("bench", model, input_example=example, alias="champion")
    return proj


def run_opsloop(root: Path, pattern: str, out: Path, workers: int, executor: str) -> dict[str, Any]:

    proj = register(Path(tempfile.mkdtemp(dir=root, prefix="proj-")) / "p", root / "data")
    model = load_model("models:/bench@champion", store=proj.store, artifacts=proj.artifacts)
    result = predict_batch(
        model, pattern, out, store=proj.store, workers=workers, executor=executor
    )
    return {"rows": result.rows, "seconds": result.seconds}


def run_mlflow(root: Path, pattern: str, out: Path) -> dict[str, Any]:

    model = mlflow.pyfunc.load_model(str(root / "mlflow_model"))
    out.mkdir(parents=True)
    started = time.perf_counter()
    rows = 0
    for i, path in enumerate(sorted(glob.glob(pattern))):
        writer = None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=FEATURES):
            labels = model.predict(batch.to_pandas())
            table = pa.table({"prediction": labels})
            writer = writer or pq.ParquetWriter(out / f"part-{i:05d}.parquet", table.schema)
            writer.write_table(table)
            rows += batch.num_rows
        if writer is not None:
            writer.close()
    return {"rows": rows, "seconds": time.perf_counter() - started}


def child(args: argparse.Namespace) -> None:
    root = Path(args.root)
    out = Path(tempfile.mkdtemp(dir=root, prefix="out-"))
    if args.mode == "mlflow":
        result = run_mlflow(root, args.pattern, out / "parts")
    else:
        result = run_opsloop(root, args.pattern, out / "parts", args.workers, args.executor)
    print(json.dumps(result))


def measure(root: Path, mode: str, pattern: str, workers: int, executor: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--root",
        str(root),
        "--pattern",
        pattern,
        "--workers",
        str(workers),
        "--executor",
        executor,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss (KiB on Linux): the largest process of the child's tree.
    result["peak_mb"] = usage.ru_maxrss / 1024
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    parser.add_argument("--child", dest="mode")
    parser.add_argument("--root")
    parser.add_argument("--pattern")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="opsloop-batch-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        t0 = time.perf_counter()
        make_data(data, args.rows)
        make_models(root, data)
        print(
            f"[setup] {args.rows:,} rows in {FILES} files, models: {time.perf_counter() - t0:.1f}s"
        )
        everything = str(data / "*.parquet")
        tenth = str(data / "f00.parquet")
        rows_out = [
            ("opsloop, 1 worker", measure(root, "opsloop", everything, 1, args.executor)),
            ("opsloop, 2 workers", measure(root, "opsloop", everything, 2, args.executor)),
            ("opsloop, 1 worker, 1/10 input", measure(root, "opsloop", tenth, 1, args.executor)),
            ("mlflow pyfunc, 1 process", measure(root, "mlflow", everything, 1, args.executor)),
        ]
    print(f"{'run':<32} {'rows':>12} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}")
    for name, r in rows_out:
        print(
            f"{name:<32} {r['rows']:>12,} {r['seconds']:>8.1f} {r['rows_per_s']:>12,.0f} "
            f"{r['peak_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
