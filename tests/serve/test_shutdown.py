"""Graceful shutdown in a real server process: SIGTERM flushes every prediction record."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opsloop.cli.serve import parse_routes, resolve_loader
from opsloop.errors import ConfigError, ServingError
from opsloop.serve import ServerConfig, read_jsonl, serve
from tests.serve.conftest import REPO, server_process
from tests.serve.models import Wrapped, numeric_model

BODY = {"dataframe_records": [{"age": 30, "income": 61.5, "city": "paris", "member": True}]}


@pytest.mark.slow
def test_sigterm_flushes_all_prediction_records(tmp_path: Path) -> None:
    log = tmp_path / "preds.jsonl"
    labels = tmp_path / "labels.jsonl"
    n = 300
    # Records gather for 5 s before a write, so at SIGTERM most of them are still queued.
    args = ("--log", str(log), "--feedback", str(labels), "--log-flush", "5")
    with server_process(*args) as (proc, url):
        # Labels are taken for answered requests only: answer some first, then label them.
        with httpx.Client(base_url=url) as client:
            for i in range(n):
                headers = {"x-request-id": f"lab-{i}"}
                assert client.post("/invocations", json=BODY, headers=headers).status_code == 200
        feedback = [{"request_id": f"lab-{i}", "label": i % 2} for i in range(n)]
        assert httpx.post(f"{url}/v1/feedback", json=feedback).json() == {"accepted": n}

        async def send_all() -> list[httpx.Response | BaseException]:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
                sem = asyncio.Semaphore(16)
                done = 0

                async def one(i: int) -> httpx.Response:
                    nonlocal done
                    async with sem:
                        r = await client.post(
                            "/invocations", json=BODY, headers={"x-request-id": f"req-{i}"}
                        )
                    done += 1
                    if done == n // 2:
                        # Stop the server while half the requests are still to come.
                        proc.send_signal(signal.SIGTERM)
                    return r

                return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)

        results = asyncio.run(send_all())
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    answered = {
        f"req-{i}"
        for i, r in enumerate(results)
        if isinstance(r, httpx.Response) and r.status_code == 200
    }
    refused = [r for r in results if not isinstance(r, httpx.Response)]
    assert all(isinstance(r, httpx.TransportError) for r in refused)
    assert len(answered) >= n // 2
    logged = [r["request_id"] for r in read_jsonl(log) if r["request_id"].startswith("req-")]
    assert len(logged) == len(set(logged))
    assert set(logged) == answered
    assert len(read_jsonl(labels)) == n


@pytest.mark.slow
def test_cli_serve_command_with_a_loader(tmp_path: Path) -> None:
    log = tmp_path / "cli.jsonl"
    script = (
        "import typer\n"
        "from opsloop.cli.serve import serve_command\n"
        "app = typer.Typer()\n"
        "app.command('serve')(serve_command)\n"
        "@app.command()\n"
        "def other() -> None: ...\n"
        "app()\n"
    )
    port_sock = __import__("socket").socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "serve",
            "test:churn/1",
            "test:churn-strict/2",
            "--loader",
            "tests.serve.models:load",
            "--port",
            str(port),
            "--traffic",
            "churn=1:0,2:100",
            "--max-batch-size",
            "8",
            "--prediction-log",
            str(log),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            __import__("time").sleep(0.1)
        r = httpx.post(f"{url}/invocations", json=BODY)
        assert r.status_code == 200
        meta = httpx.get(f"{url}/v2/models/churn").json()
        assert meta["versions"] == ["1", "2"]
        infer = httpx.post(
            f"{url}/v2/models/churn/infer",
            json={
                "inputs": [
                    {"name": "age", "datatype": "INT64", "shape": [1], "data": [30]},
                    {"name": "income", "datatype": "FP64", "shape": [1], "data": [61.5]},
                    {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]},
                    {"name": "member", "datatype": "BOOL", "shape": [1], "data": [True]},
                ]
            },
        )
        assert infer.json()["model_version"] == "2"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.communicate()
    assert len(read_jsonl(log)) == 2


def test_cli_reports_bad_options() -> None:
    assert parse_routes(["m=1:90,2:10", "n=5"], "--traffic") == {
        "m": [("1", "90"), ("2", "10")],
        "n": [("5", "")],
    }
    with pytest.raises(ConfigError, match="MODEL=VERSION"):
        parse_routes(["m"], "--traffic")
    loader = resolve_loader(len)  # type: ignore[arg-type]
    assert loader is len


def test_serve_raises_when_startup_fails() -> None:
    config = ServerConfig(models=[Wrapped(numeric_model(), fail_load=True)], port=0)
    with pytest.raises(ServingError, match="could not start: model 'num' version '1' failed"):
        serve(config)
