"""Attacks on the prediction log: one 10 MiB request, poisoned chunk references, hostile
values, and a flood of large requests in one monitoring window."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import Text, cast, func, select

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.monitor.retention import prune_predictions
from opsloop.monitor.windows import load_window
from opsloop.serve.base import PredictionRecord
from opsloop.serve.store_sink import StorePredictionSink
from opsloop.spec.schema import RetentionSection
from opsloop.store import Store, open_store
from opsloop.store import models as m
from opsloop.store.prediction_chunks import read_chunk, write_chunk

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, tzinfo=UTC)
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _opsloop_serve(project: Path, store_url: str) -> Iterator[str]:
    """``opsloop serve`` of the numeric test model in ``project``, as ``opsloop up`` runs it."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPSLOOP_PROJECT_DIR": str(project),
        "OPSLOOP_STORE_URL": store_url,
    }
    env.pop("OPSLOOP_ARTIFACT_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsloop",
            "serve",
            "test:num/1",
            "--loader",
            "tests.serve.models:load",
            "--port",
            str(port),
            "--deployment",
            "num-prod",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"opsloop serve did not start: {proc.communicate()[1]}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _json_sizes(store: Store) -> list[int]:
    size = func.length(cast(m.Prediction.inputs, Text)) + func.length(
        cast(m.Prediction.outputs, Text)
    )
    with store.db.read() as s:
        return [int(v) for v in s.scalars(select(size))]


def test_a_10_mib_request_is_not_stored_as_one_huge_row(tmp_path: Path, store_url: str) -> None:
    """The reported attack: 283,396 rows in one 10 MiB request to ``opsloop serve``."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "opsloop.yaml").write_text("project: sec\n")
    n = 283_396
    rng = np.random.default_rng(9)
    values = rng.uniform(size=n * 4)
    text = ",".join(f"{v:.6f}" for v in values)
    head = '{"inputs":[{"name":"x","datatype":"FP64","shape":[' + str(n) + ',4],"data":['
    body = (head + text + "]}]}").encode()
    assert 10 * MIB - 300_000 < len(body) <= 10 * MIB
    with _opsloop_serve(project, store_url) as url:
        resp = httpx.post(
            f"{url}/v2/models/num/infer",
            content=body,
            headers={"content-type": "application/json", "x-request-id": "attack-1"},
            timeout=180,
        )
        assert resp.status_code == 200, resp.text[:300]
        store = open_store(store_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not store.predictions.read():
            time.sleep(0.2)
    (row,) = store.predictions.read()
    (size,) = _json_sizes(store)
    assert size < 1_000, f"the predictions row takes {size} bytes"
    assert (row.rows, row.deployment, row.outputs["log"]["policy"]) == (n, "num-prod", "reference")
    artifacts = open_artifact_store(str(project / ".opsloop" / "artifacts"))
    assert row.chunk is not None
    assert artifacts.size(row.chunk) == row.outputs["log"]["bytes"]
    chunk = read_chunk(artifacts, row.chunk)
    np.testing.assert_allclose(
        chunk.inputs.to_numpy(), np.round(values, 6).reshape(n, 4), rtol=0, atol=1e-12
    )
    assert len(chunk.outputs) == n
    win = load_window(
        store,
        "num-prod",
        row.time - timedelta(minutes=1),
        row.time + timedelta(minutes=1),
        artifacts=artifacts,
    )
    assert win.row_count == n and win.notes == []
    store.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    yield store, artifacts
    store.close()


def _row(request_id: str, chunk: str, when: datetime = T0) -> dict[str, object]:
    return {
        "request_id": request_id,
        "deployment": "d",
        "model_name": "m",
        "model_version": "1",
        "time": when,
        "latency_ms": 1.0,
        "shadow": False,
        "inputs": {},
        "outputs": {"values": [], "log": {"policy": "reference", "columns": ["x"]}},
        "rows": 5_000,
        "chunk": chunk,
    }


def test_poisoned_chunk_references_are_refused(
    stores: tuple[Store, ArtifactStore], tmp_path: Path
) -> None:
    """A row whose reference points outside the store, or at a blob that is no chunk, is
    neither read nor deleted; the window says so and goes on."""
    store, artifacts = stores
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    not_a_chunk = artifacts.put_bytes(b'{"reference": "profile"}')
    store.predictions.log(
        [
            _row("escape", f"sha256:../../{victim.name}"),
            _row("traversal", str(victim)),
            _row("profile", not_a_chunk),
        ]
    )
    win = load_window(store, "d", T0, T0 + timedelta(minutes=15), artifacts=artifacts)
    assert len(win.rows) == 0 and win.row_count == 15_000
    assert len(win.notes) == 3 and all("cannot be read" in n for n in win.notes)
    # Sampled under a cap, the same references are refused the same way.
    capped = load_window(
        store, "d", T0, T0 + timedelta(minutes=15), artifacts=artifacts, max_rows=10
    )
    assert len(capped.rows) == 0 and sum("cannot be read" in n for n in capped.notes) == 3
    store.series.append([("monitor.window", {"deployment": "d"}, T0 + timedelta(days=1), 0.0)])
    result = prune_predictions(
        store, artifacts, RetentionSection(max_age_days=1), now=T0 + timedelta(days=5)
    )
    assert result.predictions == 3
    assert victim.read_text() == "keep me"
    # Another artifact named by a row is not deleted with it: it is no prediction chunk.
    assert artifacts.exists(not_a_chunk)
    assert any("is no prediction chunk; kept" in n for n in result.notes)
    assert sum("not an artifact digest" in n for n in result.notes) == 2


def test_a_row_that_overstates_its_chunk_is_refused(stores: tuple[Store, ArtifactStore]) -> None:
    """A row claiming more rows than its chunk holds: the sample asks for rows that are not
    there, and the window says so instead of failing."""
    store, artifacts = stores
    ref = write_chunk(
        artifacts,
        request_id="liar",
        model="m",
        version="1",
        inputs={"x": [1.0] * 2_000},
        outputs=[0.5] * 2_000,
    )
    store.predictions.log([{**_row("liar", ref.digest), "rows": 1_000_000}])
    win = load_window(store, "d", T0, T0 + timedelta(minutes=1), artifacts=artifacts, max_rows=50)
    assert len(win.rows) == 0 and "rows beyond were asked for" in win.notes[-1]


def test_hostile_values_in_a_large_request_round_trip(stores: tuple[Store, ArtifactStore]) -> None:
    """NaN, infinities, huge numbers, mixed types and a column named like the output column
    go through a chunk and back as they were sent."""
    store, artifacts = stores
    n = 1_500
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    x[:4] = [math.nan, math.inf, -math.inf, 1e308]
    mixed: list[object] = ["a", 1, None, [1, 2]] * (n // 4) + ["z"] * (n % 4)
    sink = StorePredictionSink(store, "d", artifacts=artifacts)
    sink.write_batch(
        [
            PredictionRecord(
                request_id="hostile",
                model="m",
                version="1",
                inputs={"x": x.tolist(), "mixed": mixed, "__output__": [2**70] * n},
                outputs=[[0.5, 0.5]] * n,
                latency_ms=1.0,
                timestamp=T0,
            )
        ]
    )
    (row,) = store.predictions.read()
    chunk = read_chunk(artifacts, str(row.chunk))
    got = chunk.inputs["x"].to_numpy()
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf and got[3] == 1e308
    np.testing.assert_array_equal(got[4:], x[4:])
    assert chunk.inputs["mixed"].tolist() == mixed
    assert chunk.inputs["__output__"].tolist() == [2**70] * n
    assert chunk.outputs == [[0.5, 0.5]] * n
    win = load_window(store, "d", T0, T0 + timedelta(minutes=1), artifacts=artifacts)
    assert len(win.rows) == n and win.rows["x"].isna().sum() == 1


def test_a_flood_of_large_requests_reads_a_bounded_sample(
    stores: tuple[Store, ArtifactStore],
) -> None:
    """Many large requests in one window: the monitor reads about its cap, not all of them."""
    store, artifacts = stores
    sink = StorePredictionSink(store, "d", artifacts=artifacts)
    rng = np.random.default_rng(2)
    sink.write_batch(
        [
            PredictionRecord(
                request_id=f"flood-{i}",
                model="m",
                version="1",
                inputs={"x": rng.normal(size=20_000).tolist()},
                outputs=rng.uniform(size=20_000).tolist(),
                latency_ms=1.0,
                timestamp=T0 + timedelta(seconds=i),
            )
            for i in range(25)
        ]
    )
    win = load_window(
        store, "d", T0, T0 + timedelta(minutes=1), artifacts=artifacts, max_rows=5_000
    )
    assert win.row_count == 500_000
    assert 5_000 - 25 <= len(win.rows) <= 5_000 + 25
    assert "a seeded sample" in win.notes[0]
