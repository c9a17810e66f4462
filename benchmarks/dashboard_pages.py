"""Dashboard page render time, server side: each page of the dashboard over a quickstart-like
project, the runs page over 10,000 runs and a run page whose metric has 1,000,000 points.

    python benchmarks/dashboard_pages.py [--repeat 5] [--runs 10000] [--points 1000000]

Each page is requested in process through the server app (the page calls /api/v1 in process
too, as it does when served), after one warm-up request; the median of ``--repeat`` is
printed with its target (every page < 300 ms; the 10,000-run runs page and the 1,000,000-point
run page < 1 s). There is no anchor: MLflow's UI is the nearest equivalent, but the
mlflow-skinny package has no UI, and a full MLflow install is no fair single-page measure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="opsloop-bench-config-"))

from fastapi.testclient import TestClient  # noqa: E402
from tests.e2e.browser.project import build_project, webhook_receiver  # noqa: E402

from opsloop.context import set_current_project  # noqa: E402
from opsloop.ui import create_server_app  # noqa: E402


def timed(client: TestClient, path: str, repeat: int) -> float:
    """Median milliseconds of GET path (after a warm-up)."""
    first = client.get(path)
    assert first.status_code == 200, (path, first.status_code, first.text[-500:])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    hook, _ = webhook_receiver()
    with tempfile.TemporaryDirectory() as tmp:
        for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
            os.environ.pop(var, None)
        project, runs, incident = build_project(
            Path(tmp) / "churn-demo", f"http://127.0.0.1:{hook.server_address[1]}/hook"
        )
        digest = project.store.models.get_version("churn", 1).dataset_digest
        pages = [
            "/",
            "/runs",
            f"/runs/{runs[0]}",
            f"/runs/compare?id={runs[0]}&id={runs[1]}",
            "/models",
            "/models/churn",
            "/models/churn/versions/1",
            "/deployments",
            "/deployments/churn-prod",
            "/incidents",
            f"/incidents/{incident}",
            "/monitoring",
            "/data",
            f"/data/{digest}",
            "/audit",
        ]
        client = TestClient(create_server_app(project))
        print(f"{'page (quickstart-like project)':<44} {'ms':>8}  target")
        worst = 0.0
        for path in pages:
            ms = timed(client, path, args.repeat)
            worst = max(worst, ms)
            print(f"{path[:44]:<44} {ms:8.1f}  < 300 {'ok' if ms < 300 else 'OVER'}")
        print(f"{'slowest page':<44} {worst:8.1f}  < 300 {'ok' if worst < 300 else 'OVER'}")

        t0 = time.perf_counter()
        for i in range(args.runs):
            run = project.store.runs.create(f"sweep-{i}", params={"lr": i % 10, "depth": i % 7})
            project.store.runs.log_metric_points(run.id, [("accuracy", (i % 97) / 97, 0, 0)])
            project.store.runs.finish(run.id, "finished")
        made = time.perf_counter() - t0
        ms = timed(client, "/runs", args.repeat)
        print(
            f"\nruns page with {args.runs:,} runs (made in {made:.0f} s): {ms:.0f} ms  "
            f"< 1000 {'ok' if ms < 1000 else 'OVER'}"
        )
        ms = timed(client, "/runs?order_by=-metrics.accuracy&q=sweep-99", args.repeat)
        print(
            f"  sorted by a metric, searched: {ms:.0f} ms  < 1000 {'ok' if ms < 1000 else 'OVER'}"
        )

        long = project.store.runs.create("long-curve")
        t0 = time.perf_counter()
        batch = 100_000
        for start in range(0, args.points, batch):
            project.store.runs.log_metric_points(
                long.id,
                [
                    ("loss", 1 / (1 + s * 1e-4), s, 0)
                    for s in range(start, min(args.points, start + batch))
                ],
            )
        project.store.runs.finish(long.id, "finished")
        made = time.perf_counter() - t0
        ms = timed(client, f"/runs/{long.id}", args.repeat)
        print(
            f"run page with {args.points:,} metric points (logged in {made:.0f} s), "
            f"downsampled: {ms:.0f} ms  < 1000 {'ok' if ms < 1000 else 'OVER'}"
        )
        client.close()
        set_current_project(None)
        project.close()
    hook.shutdown()
    hook.server_close()


if __name__ == "__main__":
    main()
