"""Many MLflow clients logging to one server on PostgreSQL: every acknowledged point is stored,
once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.api.mlflow_server import project_at, run_server

CLIENT = textwrap.dedent(
    """
    import json, logging, os, sys, time, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    seconds, worker = float(sys.argv[1]), int(sys.argv[2])
    client = MlflowClient()
    run_id = client.create_run("0", run_name=f"worker-{worker}").info.run_id
    batch_steps = single_steps = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ts = int(time.time() * 1000)
        size = 50 + (batch_steps // 50) % 150  # batches of varying sizes
        steps = range(batch_steps, batch_steps + size)
        client.log_batch(run_id, metrics=[Metric("loss", s * 0.5, ts, s) for s in steps])
        batch_steps += size
        client.log_metric(run_id, "single", float(single_steps), step=single_steps)
        single_steps += 1
    client.set_terminated(run_id)
    print(json.dumps({"run_id": run_id, "loss": batch_steps, "single": single_steps}))
    """
)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)  # 20 interpreters importing MLflow on a small machine, then 60 s
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_twenty_clients_for_a_minute_lose_no_point(tmp_path: Path, pg_database_url: str) -> None:
    seconds = float(os.environ.get("OPSLOOP_MLFLOW_SOAK_SECONDS", "60"))
    project = project_at(tmp_path / "proj", pg_database_url)
    try:
        with run_server(project) as running:
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": running.url,
                # A retried write could store a batch twice and hide a lost answer: none.
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
            }
            clients = [
                subprocess.Popen(
                    [sys.executable, "-c", CLIENT, str(seconds), str(i)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(20)
            ]
            reports = []
            for proc in clients:
                out, err = proc.communicate(timeout=seconds + 150)
                assert proc.returncode == 0, err[-3000:]
                reports.append(json.loads(out.strip().splitlines()[-1]))

        store = project.store
        assert len({r["run_id"] for r in reports}) == 20
        total = 0
        for report in reports:
            run_id = report["run_id"]
            assert store.runs.get(run_id).status == "finished"
            for key in ("loss", "single"):
                steps = [p.step for p in store.runs.metric_history(run_id, key)]
                # Every acknowledged point, once each, and nothing else.
                assert steps == list(range(report[key])), (run_id, key, len(steps), report[key])
            assert store.runs.count_metric_points(run_id) == report["loss"] + report["single"]
            total += report["loss"] + report["single"]
        assert total > 20 * 100, f"the clients logged only {total} points"
        print(f"{total:,} points from 20 MLflow clients in {seconds:.0f} s, each stored once")
    finally:
        project.close()
