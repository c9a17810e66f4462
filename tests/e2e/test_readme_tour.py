"""Every command of the README's CLI tour runs, in order, as written, in the project the
README's set-up command made (``churn-demo``, shared with the quickstart test).

The commands are read from the README itself, so the tour and this test cannot drift apart.
The two that run until stopped (``opsloop serve`` and ``opsloop up``) are started, checked
while they run and stopped with Ctrl-C / SIGTERM as a user would stop them; the one port the
tour names is swapped for a free one, as this machine may use it.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.e2e.conftest import Quickstart, opsloop_env
from tests.ports import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands(readme: str) -> list[str]:
    """The commands of the tour's code blocks, comments and blank lines left out."""
    section = readme.split("\n## A tour of the CLI\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            command = re.split(r"\s#\s", f"{line} ", maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_the_tour_is_read_from_the_readme() -> None:
    commands = tour_commands(README.read_text(encoding="utf-8"))
    assert commands[0] == "cd churn-demo", commands
    assert "opsloop runs list" in commands and "opsloop down" in commands
    assert not any("#" in c for c in commands), commands
    # No placeholder a reader would have to fill in.
    assert not [c for c in commands if re.search(r"\b[A-Z][A-Z_]{2,}\b", c)], commands


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _serve(command: str, cwd: Path) -> str:
    """Start ``opsloop serve``, ask it for a prediction, stop it with Ctrl-C."""
    port = free_port()
    command = re.sub(r"--port \d+", f"--port {port}", command)
    proc = subprocess.Popen(
        shlex.split(command), cwd=cwd, env=opsloop_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "opsloop serve did not become ready"
            time.sleep(0.5)
        # Rows straight from the project's data file, ids, dates and the label included.
        rows = pd.read_parquet(cwd / "data" / "customers.parquet").head(3)
        records = json.loads(rows.to_json(orient="records", date_format="iso"))
        answer = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": records},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"], answer.text
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    # It shuts down cleanly; the exit status is 0, or 130 (128 + SIGINT) where the server
    # hands the interrupt back to the default handler after its shutdown, as uvicorn does.
    assert code in (0, 130) and "stopped serving" in err, (code, out + err)
    return out + err


def _up(command: str, cwd: Path) -> str:
    """Start ``opsloop up`` (no terminal: JSON lines), wait for a pass, stop it with SIGTERM."""
    proc = subprocess.Popen(
        shlex.split(command), cwd=cwd, env=opsloop_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            lines.append(line)
            if '"pass"' in line:
                break
            assert time.monotonic() < deadline, "opsloop up wrote no pass"
    finally:
        code, out, err = _stop(proc, signal.SIGTERM)
    assert code == 0, "".join(lines) + out + err
    assert any('"pass"' in line for line in lines), "".join(lines) + err
    return "".join(lines) + out + err


def _run(command: str, cwd: Path) -> str:
    done = subprocess.run(
        command, shell=True, cwd=cwd, env=opsloop_env(), capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"$ {command}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_command_of_the_tour_runs_in_the_project_set_up_made(
    quickstart: Quickstart,
) -> None:
    result = quickstart.result
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-3000:]
    cwd = quickstart.root
    said: dict[str, str] = {}
    for line in tour_commands(README.read_text(encoding="utf-8")):
        for command in (part.strip() for part in line.split("&&")):
            if command.startswith("cd "):
                cwd = (cwd / command[3:].strip()).resolve()
                assert cwd.is_dir(), f"$ {line}: no folder {cwd}"
            elif command.startswith("opsloop serve "):
                said[command] = _serve(command, cwd)
            elif command == "opsloop up":
                said[command] = _up(command, cwd)
            else:
                said[command] = _run(command, cwd)
        print(f"$ {line}", file=sys.stderr)

    # A few answers that show each command did its part, not merely exited 0.
    assert "churn" in said["opsloop models list"]
    assert "champion" in said["opsloop models show churn"]
    assert "churn-prod" in said["opsloop status"]
    k8s = quickstart.folder / "k8s"
    assert list(k8s.glob("*.yaml")), "deploy render wrote no manifests"
    assert (quickstart.folder / "ev" / "index.html").is_file()
