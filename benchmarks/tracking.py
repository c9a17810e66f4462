"""Tracking throughput: opsloop against MLflow, same machine, same run of this script.

Both log to a SQLite store. MLflow runs in its own virtual environment (``.bench/mlflow``, made on
first use). Each side runs in a fresh subprocess so neither warms the other's caches.

    python benchmarks/tracking.py [--points 100000] [--mlflow-loop-points 2000]

Prints points/s for opsloop's plain ``log_metric`` loop, MLflow's ``log_metric`` loop and
MLflow's ``log_batch`` (batches of 1,000, MLflow's limit), the ratio of opsloop's loop to
MLflow's ``log_batch`` (target: at least 10x), and the overhead of a cached no-op pipeline
step and of a fully cached 10-step pipeline re-run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _anchors import anchor_python

MLFLOW_REQUIREMENTS = ["mlflow==3.17.2"]

OPSLOOP_SIDE = textwrap.dedent(
    """
    import json, sys, time
    import opsloop
    n = int(sys.argv[1])
    with opsloop.use_project(sys.argv[2]):
        with opsloop.start_run(name="bench") as run:
            t0 = time.perf_counter()
            for i in range(n):
                opsloop.log_metric("loss", i * 0.5, step=i)
            run.flush()
            dt = time.perf_counter() - t0
        stored = run.store.runs.count_metric_points(run.id)
    print(json.dumps({"seconds": dt, "points": n, "stored": stored}))
    """
)

MLFLOW_SIDE = textwrap.dedent(
    """
    import json, logging, sys, time, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    n_loop, n_batch, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    client = MlflowClient()
    out = {}
    with mlflow.start_run() as run:
        t0 = time.perf_counter()
        for i in range(n_loop):
            mlflow.log_metric("loss", i * 0.5, step=i)
        out["loop_seconds"] = time.perf_counter() - t0
    with mlflow.start_run() as run:
        ts = int(time.time() * 1000)
        t0 = time.perf_counter()
        for start in range(0, n_batch, 1000):
            stop = min(start + 1000, n_batch)
            batch = [Metric("loss", i * 0.5, ts, i) for i in range(start, stop)]
            client.log_batch(run.info.run_id, metrics=batch)
        out["batch_seconds"] = time.perf_counter() - t0
        out["batch_stored"] = len(client.get_metric_history(run.info.run_id, "loss"))
    out["version"] = mlflow.__version__
    print(json.dumps(out))
    """
)


def _run(python: str, code: str, *args: str) -> dict[str, float]:
    done = subprocess.run([python, "-c", code, *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"benchmark side failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument(
        "--mlflow-loop-points",
        type=int,
        default=2_000,
        help="points for MLflow's log_metric loop (it does a few hundred per second)",
    )
    args = ap.parse_args()
    mlflow_python = anchor_python("mlflow", MLFLOW_REQUIREMENTS)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ops").mkdir()
        ops = _run(sys.executable, OPSLOOP_SIDE, str(args.points), str(Path(tmp) / "ops"))
        mlf = _run(
            str(mlflow_python),
            MLFLOW_SIDE,
            str(args.mlflow_loop_points),
            str(args.points),
            tmp,
        )

    ops_rate = ops["points"] / ops["seconds"]
    mlf_loop = args.mlflow_loop_points / mlf["loop_seconds"]
    mlf_batch = args.points / mlf["batch_seconds"]
    assert ops["stored"] == args.points, f"opsloop stored {ops['stored']} of {args.points} points"
    assert mlf["batch_stored"] == args.points

    print(f"\nmetric points: {args.points:,} (MLflow log_metric loop: {args.mlflow_loop_points:,})")
    print(f"{'side':<34}{'points/s':>14}")
    print(f"{'opsloop log_metric loop':<34}{ops_rate:>14,.0f}")
    print(f"{'MLflow ' + str(mlf['version']) + ' log_metric loop':<34}{mlf_loop:>14,.0f}")
    print(f"{'MLflow ' + str(mlf['version']) + ' log_batch (1000/call)':<34}{mlf_batch:>14,.0f}")
    ratio = ops_rate / mlf_batch
    print(f"\nratio opsloop loop / MLflow log_batch: {ratio:.1f}x (target >= 10x)")
    print(f"ratio opsloop loop / MLflow log_metric loop: {ops_rate / mlf_loop:.0f}x")

    # Lazy imports here and below (noqa: PLC0415) of pipeline_overhead: each loads only where it is
    # used, so importing this module stays light.
    from pipeline_overhead import measure_cached_overheads  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        over = measure_cached_overheads(Path(tmp))
    print("\npipeline overhead (fully cached re-run):")
    for k, v in over.items():
        print(f"  {k:<40}{v:>10.1f} ms")


if __name__ == "__main__":
    main()
