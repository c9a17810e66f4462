"""Remote tracking throughput: a plain ``opsloop.log_metric`` loop logging to a team server.

The server is ``opsloop server``'s application (uvicorn over ``create_app``) over a SQLite
project, in a subprocess on 127.0.0.1; the client is another subprocess with
``OPSLOOP_SERVER`` set and no store of its own. The clock runs from the first ``log_metric``
to the moment every point is stored on the server (``run.flush()``), and the points are
counted on the server afterwards.

    python benchmarks/remote_tracking.py [--points 100000] [--repeat 3]

Prints points/s and how many store calls the points took. The anchor is MLflow's client with
``log_batch`` to ``mlflow server`` (``benchmarks/tracking_server.py``); the target is at
least 10x that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

SERVER_SIDE = textwrap.dedent(
    """
    import socket, sys
    import uvicorn
    from opsloop.api import create_app
    from opsloop.context import open_project
    project = open_project(__import__("pathlib").Path(sys.argv[1]))
    app = create_app(project)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print("PORT", sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])
    """
)

CLIENT_SIDE = textwrap.dedent(
    """
    import json, sys, time
    import opsloop
    n = int(sys.argv[1])
    with opsloop.start_run(name="bench") as run:
        t0 = time.perf_counter()
        for i in range(n):
            opsloop.log_metric("loss", i * 0.5, step=i)
        run.flush()
        dt = time.perf_counter() - t0
    store = run.store
    print(json.dumps({
        "seconds": dt,
        "points": n,
        "stored": store.runs.count_metric_points(run.id),
        "calls": store.requests,
    }))
    """
)


def _start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SIDE, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r} {proc.communicate()[1]}")
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/v1/openapi.json", timeout=2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not answer within 60 s")


def remote_client(url: str, points: int, cwd: Path) -> dict[str, float]:
    """Log ``points`` with a plain ``opsloop.log_metric`` loop in remote mode, in a process of
    its own; returns the seconds, points stored and store calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env["OPSLOOP_SERVER"] = url
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_SIDE, str(points)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the client failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="client runs; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloop-remote-bench-") as tmp:
        server_dir, laptop = Path(tmp) / "server", Path(tmp) / "laptop"
        server_dir.mkdir()
        laptop.mkdir()
        (server_dir / "opsloop.yaml").write_text("project: bench\n")
        proc, url = _start_server(server_dir)
        try:
            runs = [remote_client(url, args.points, laptop) for _ in range(args.repeat)]
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    for r in runs:
        if r["stored"] != r["points"]:
            raise SystemExit(f"the server stored {r['stored']:,} of {r['points']:,} points")
    best = min(runs, key=lambda r: r["seconds"])
    rate = best["points"] / best["seconds"]
    n, seconds = int(best["points"]), best["seconds"]
    print(f"opsloop remote log_metric loop: {n:,} points in {seconds:.2f} s")
    print(f"  {rate:,.0f} points/s (best of {len(runs)}), {int(best['calls'])} store calls")
    print(json.dumps({"opsloop_remote_points_per_s": rate, "runs": runs}))


if __name__ == "__main__":
    main()
