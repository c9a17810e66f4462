"""Serving throughput and latency: opsloop vs ``mlflow models serve`` vs MLServer.

Every server serves the same scikit-learn pipeline (StandardScaler + LogisticRegression over
30 float features, trained on seeded synthetic data) and answers with class probabilities.
A separate load-generator process (``wrk`` when installed, else a Python asyncio client)
drives single-row requests over keep-alive connections at each concurrency for a fixed time
after a warm-up, one server at a time, and the script prints requests/s, p50, p99 latency and
errors for each, and opsloop's ratios to the anchors measured in the same run.

The anchors live in their own venvs (``.bench/mlflow-serve``, ``.bench/mlserver``), created on
first run. MLServer runs twice: as configured out of the box and with adaptive batching.

Usage::

    python benchmarks/serving.py [--duration 15] [--warmup 3] [--concurrency 8 32]
        [--only opsloop mlflow mlserver] [--loadgen auto|wrk|python]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
from _anchors import BENCH_DIR, ROOT, anchor_python
from _serving_common import COLUMNS, make_data, probe_row, train
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
MLFLOW_REQUIREMENTS = ["mlflow==3.17.2"]
# MLServer 1.7's inference workers call asyncio.get_event_loop() with no loop set, which
# uvloop 0.22+ refuses; pin the uvloop it was released with.
MLSERVER_REQUIREMENTS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"]
# MLServer's adaptive batching: up to 32 requests, waiting at most 5 ms to fill a batch.
MLSERVER_ADAPTIVE = ("32", "0.005")
console = Console()

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BODY_FILE")):read("*a")
done = function(summary, latency, requests)
  io.write(string.format(
    "JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d," ..
    "\\"non2xx\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"timeout\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""


@dataclass
class Result:
    server: str
    protocol: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_wrk(mode: str) -> str | None:
    """The wrk binary, installing Debian's package when allowed; None for the Python client."""
    if mode == "python":
        return None
    found = shutil.which("wrk")
    if found or mode == "python":
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        console.print("[setup] installing wrk from Debian packages")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if found is None and mode == "wrk":
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    return found


@contextlib.contextmanager
def running(
    cmd: list[str],
    ready_url: str,
    name: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180.0,
) -> Iterator[None]:
    """Start a server process, wait until ``ready_url`` answers 200, stop it on exit."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{name} exited early:\n{log.read().decode()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s")
                time.sleep(0.25)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def load(
    url: str, body: Path, concurrency: int, duration: float, warmup: float, wrk: str | None
) -> dict[str, float]:
    """Drive ``url`` from a separate process; returns the load generator's JSON figures."""
    if wrk is not None:
        script = body.with_suffix(".lua")
        script.write_text(WRK_SCRIPT)
        env = {**os.environ, "BODY_FILE": str(body)}
        if warmup:
            subprocess.run(
                [
                    wrk,
                    "-t1",
                    f"-c{concurrency}",
                    f"-d{max(1, round(warmup))}s",
                    "-s",
                    str(script),
                    url,
                ],
                env=env,
                capture_output=True,
                check=True,
            )
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("JSON "))
        data: dict[str, float] = json.loads(line[5:])
        return data
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "_serving_loadgen.py"),
            url,
            str(body),
            str(concurrency),
            str(duration),
            str(warmup),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data


def measure(
    server: str,
    protocol: str,
    url: str,
    body: Path,
    args: argparse.Namespace,
    wrk: str | None,
    results: list[Result],
) -> None:
    for concurrency in args.concurrency:
        console.print(f"  {server} {protocol} c={concurrency} …", end="")
        data = load(url, body, concurrency, args.duration, args.warmup, wrk)
        errors = int(sum(data[k] for k in ("non2xx", "connect", "read", "write", "timeout")))
        result = Result(
            server,
            protocol,
            concurrency,
            rps=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            errors=errors,
            requests=int(data["requests"]),
        )
        results.append(result)
        console.print(
            f" {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
            f" errors {errors}"
        )


def check_answer(url: str, body: dict[str, object], expected: np.ndarray, name: str) -> None:
    """Every server must answer the probe with the reference probabilities."""
    r = httpx.post(url, json=body, timeout=30)
    r.raise_for_status()
    doc = r.json()
    got = doc["predictions"] if "predictions" in doc else doc["outputs"][0]["data"]
    got_arr = np.asarray(got, dtype=float).reshape(-1)
    if not np.allclose(got_arr, expected.reshape(-1), atol=1e-6):
        raise SystemExit(f"{name} answered {got_arr} for the probe, expected {expected}")


def chart(results: list[Result], path: Path) -> None:
    # Lazy imports here and below (noqa: PLC0415) of matplotlib: each loads only where it is used,
    # so importing this module stays light.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels = sorted({(r.server, r.protocol) for r in results}, key=lambda k: (k[0] != "opsloop", k))
    concs = sorted({r.concurrency for r in results})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(labels)
    for i, (server, protocol) in enumerate(labels):
        rows = {r.concurrency: r for r in results if (r.server, r.protocol) == (server, protocol)}
        xs = [c + (i - len(labels) / 2) * width for c in range(len(concs))]
        ax1.bar(
            xs,
            [rows[c].rps if c in rows else 0 for c in concs],
            width,
            label=f"{server} ({protocol})",
        )
        ax2.bar(xs, [rows[c].p99_ms if c in rows else 0 for c in concs], width)
    ax2.set_yscale("log")
    for ax, title in (
        (ax1, "requests/s (higher is better)"),
        (ax2, "p99 latency, ms, log scale (lower is better)"),
    ):
        ax.set_xticks(range(len(concs)), [f"concurrency {c}" for c in concs])
        ax.set_title(title)
    ax1.legend(fontsize=8)
    fig.suptitle("Single-row scoring, 30-feature scikit-learn pipeline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--only", nargs="+", default=["opsloop", "mlflow", "mlserver"])
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--opsloop-log", action="store_true", help="also run opsloop with its prediction log on"
    )
    args = parser.parse_args()

    work = BENCH_DIR / "serving"
    data_dir = work / "data"
    make_data(data_dir)
    row = probe_row(data_dir)
    reference = train(data_dir, with_names=False).predict_proba(np.array([row]))
    v2 = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, len(row)], "data": row}]}
    # opsloop and MLServer answer a classifier's labels unless probabilities are asked for.
    v2_proba = {**v2, "outputs": [{"name": "predict_proba"}]}
    split = {"dataframe_split": {"columns": COLUMNS, "data": [row]}}
    split_proba = {**split, "params": {"predict_method": "predict_proba"}}
    bodies = {}
    for name, body in (("v2", v2_proba), ("split", split), ("split-proba", split_proba)):
        bodies[name] = work / f"body-{name}.json"
        bodies[name].write_text(json.dumps(body))

    wrk = find_wrk(args.loadgen)
    generator = "wrk (C)" if wrk else "Python asyncio client"
    console.print(
        f"load generator: {generator}, in a separate process; "
        f"{args.duration:.0f} s per point after {args.warmup:.0f} s warm-up; "
        f"{os.cpu_count()} CPUs"
    )
    results: list[Result] = []

    if "opsloop" in args.only:
        variants = [("opsloop", [])]
        if args.opsloop_log:
            variants.append(("opsloop+log", ["--log", str(work / "predictions.jsonl")]))
        for name, extra in variants:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            cmd = [
                sys.executable,
                str(HERE / "_serving_opsloop.py"),
                str(data_dir),
                str(port),
                *extra,
            ]
            with running(cmd, f"{base}/v2/health/ready", name, cwd=ROOT):
                check_answer(f"{base}/v2/models/bench/infer", v2_proba, reference, name)
                check_answer(f"{base}/invocations", split_proba, reference, name)
                measure(
                    name, "V2", f"{base}/v2/models/bench/infer", bodies["v2"], args, wrk, results
                )
                measure(
                    name,
                    "invocations",
                    f"{base}/invocations",
                    bodies["split-proba"],
                    args,
                    wrk,
                    results,
                )
            (work / "predictions.jsonl").unlink(missing_ok=True)

    if "mlflow" in args.only:
        python = anchor_python("mlflow-serve", MLFLOW_REQUIREMENTS)
        model_dir = work / "mlflow-model"
        subprocess.run(
            [
                str(python),
                str(HERE / "_serving_anchor.py"),
                "mlflow",
                str(data_dir),
                str(model_dir),
            ],
            check=True,
        )
        port = free_port()
        cmd = [
            str(python.parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        base = f"http://127.0.0.1:{port}"
        # mlflow starts `uvicorn` by name: its venv's bin must come first on PATH.
        env = {
            "MLFLOW_TRACKING_URI": str(work / "mlruns"),
            "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        with running(cmd, f"{base}/ping", "mlflow", env=env):
            check_answer(f"{base}/invocations", split, reference, "mlflow")
            measure(
                "mlflow", "invocations", f"{base}/invocations", bodies["split"], args, wrk, results
            )

    if "mlserver" in args.only:
        python = anchor_python("mlserver", MLSERVER_REQUIREMENTS)
        for name, adaptive in (
            ("mlserver", []),
            ("mlserver+adaptive", ["--adaptive", *MLSERVER_ADAPTIVE]),
        ):
            model_dir = work / name
            port, grpc, metrics = free_port(), free_port(), free_port()
            subprocess.run(
                [
                    str(python),
                    str(HERE / "_serving_anchor.py"),
                    "mlserver",
                    str(data_dir),
                    str(model_dir),
                    str(port),
                    str(grpc),
                    str(metrics),
                    *adaptive,
                ],
                check=True,
            )
            base = f"http://127.0.0.1:{port}"
            cmd = [str(python.parent / "mlserver"), "start", str(model_dir)]
            with running(cmd, f"{base}/v2/models/bench/ready", name, cwd=model_dir):
                url = f"{base}/v2/models/bench/infer"
                check_answer(url, v2_proba, reference, name)
                measure(name, "V2", url, bodies["v2"], args, wrk, results)

    table = Table(title="Serving benchmark (same machine, same run)")
    for col in ("server", "protocol", "conc.", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right" if col not in ("server", "protocol") else "left")
    for r in results:
        table.add_row(
            r.server,
            r.protocol,
            str(r.concurrency),
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.errors),
        )
    console.print(table)

    def best(prefix: str, protocol: str, conc: int) -> Result | None:
        rows = [
            r
            for r in results
            if r.server in (prefix, f"{prefix}+adaptive")
            and r.protocol == protocol
            and r.concurrency == conc
        ]
        return max(rows, key=lambda r: r.rps) if rows else None

    # Like for like: MLflow's protocol is /invocations, MLServer's is V2.
    for conc in args.concurrency:
        for anchor, protocol in (("mlflow", "invocations"), ("mlserver", "V2")):
            ours, theirs = best("opsloop", protocol, conc), best(anchor, protocol, conc)
            if ours is None or theirs is None:
                continue
            console.print(
                f"c={conc} {protocol}: opsloop / {theirs.server}: "
                f"throughput x{ours.rps / theirs.rps:.1f}; p99 {ours.p99_ms:.1f} ms vs "
                f"{theirs.p99_ms:.1f} ms; errors {ours.errors} vs {theirs.errors}"
            )
    out = work / "results.json"
    out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    chart(results, work / "serving.png")
    console.print(
        f"results: {out.relative_to(ROOT)}, chart: {(work / 'serving.png').relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
