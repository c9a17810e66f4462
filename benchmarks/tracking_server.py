"""Tracking server throughput: MLflow's client logging to opsloop's server and to MLflow's.

Both servers run on this machine in the same run of this script, on 127.0.0.1, each over a
SQLite store: opsloop's control plane (its MLflow-compatible API) and ``mlflow server
--backend-store-uri sqlite:///...`` (MLflow's default four workers). The same client, MLflow's
own (from its virtual environment, ``.bench/mlflow``, made on first use), logs the points with
``MlflowClient.log_batch`` in batches of 1,000 (MLflow's limit) to one run on each server, then
reads the metric history back to check that every point is stored.

    python benchmarks/tracking_server.py [--points 100000]

Prints points/s for each server and the ratio (target: opsloop at least 3x MLflow's), and
opsloop's own client in remote mode logging the same points with a plain ``log_metric`` loop
to the opsloop server (target: at least 10x MLflow's client with ``log_batch`` to
``mlflow server``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _anchors import anchor_python
from remote_tracking import remote_client

from tracking import MLFLOW_REQUIREMENTS

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent

OPSLOOP_SERVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import uvicorn
    from opsloop.api import create_app
    from opsloop.context import open_project
    project = open_project(Path(sys.argv[1]))
    project.store  # open (and migrate) before the first request
    uvicorn.run(
        create_app(project), host="127.0.0.1", port=int(sys.argv[2]),
        log_level="warning", access_log=False,
    )
    """
)

CLIENT = textwrap.dedent(
    """
    import json, logging, sys, time, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    url, n = sys.argv[1], int(sys.argv[2])
    client = MlflowClient(tracking_uri=url)
    run = client.create_run("0")
    run_id = run.info.run_id
    ts = int(time.time() * 1000)
    batches = [
        [Metric("loss", i * 0.5, ts, i) for i in range(start, min(start + 1000, n))]
        for start in range(0, n, 1000)
    ]
    t0 = time.perf_counter()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    seconds = time.perf_counter() - t0
    client.set_terminated(run_id)
    stored = len(client.get_metric_history(run_id, "loss"))
    print(json.dumps({"seconds": seconds, "stored": stored, "version": mlflow.__version__}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    probe = f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with status {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(probe, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"server at {url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def _serving(cmd: list[str], cwd: Path, url: str, log: Path) -> Iterator[None]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_ready(url, proc)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _client(python: Path, url: str, points: int) -> dict[str, float]:
    done = subprocess.run(
        [str(python), "-c", CLIENT, url, str(points)], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"client failed against {url}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--mlflow-workers", type=int, default=4, help="MLflow's default is 4")
    args = ap.parse_args()
    mlflow_python = anchor_python("mlflow", MLFLOW_REQUIREMENTS)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ops_dir, mlf_dir = tmp / "opsloop", tmp / "mlflow"
        ops_dir.mkdir()
        mlf_dir.mkdir()
        (ops_dir / "opsloop.yaml").write_text("project: bench\n")

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-c", OPSLOOP_SERVER, str(ops_dir), str(port)]
        with _serving(cmd, ops_dir, url, tmp / "opsloop.log"):
            ops = _client(mlflow_python, url, args.points)
            laptop = tmp / "laptop"
            laptop.mkdir()
            own = remote_client(url, args.points, laptop)

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            str(mlflow_python.parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{mlf_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(mlf_dir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.mlflow_workers),
        ]
        with _serving(cmd, mlf_dir, url, tmp / "mlflow.log"):
            mlf = _client(mlflow_python, url, args.points)

    for side, got in (("opsloop", ops), ("MLflow", mlf)):
        if got["stored"] != args.points:
            sys.exit(f"{side}'s server stored {got['stored']} of {args.points} points")
    ops_rate = args.points / ops["seconds"]
    mlf_rate = args.points / mlf["seconds"]
    print(f"\nMLflow {mlf['version']} client, log_batch of 1,000 points, {args.points:,} points")
    print(f"{'server (SQLite store)':<40}{'points/s':>14}")
    print(f"{'opsloop server':<40}{ops_rate:>14,.0f}")
    print(f"{'mlflow server (' + str(args.mlflow_workers) + ' workers)':<40}{mlf_rate:>14,.0f}")
    print(f"\nratio opsloop server / mlflow server: {ops_rate / mlf_rate:.1f}x (target >= 3x)")
    if own["stored"] != args.points:
        sys.exit(f"opsloop's remote client stored {own['stored']} of {args.points} points")
    own_rate = args.points / own["seconds"]
    print(
        f"\nopsloop's own client in remote mode, a plain log_metric loop: {own_rate:,.0f} points/s"
        f" ({int(own['calls'])} store calls)"
    )
    print(
        f"ratio opsloop remote log_metric / MLflow log_batch to mlflow server: "
        f"{own_rate / mlf_rate:.1f}x (target >= 10x)"
    )


if __name__ == "__main__":
    main()
