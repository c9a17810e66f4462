"""The lifecycle on a two-node Ray cluster, with PostgreSQL and S3 (moto), equals the local
executor's run: same tuning, same metrics, same registered model; and its steps ran on both
nodes."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from opsloop.context import Project, open_project, set_current_project
from opsloop.lifecycle import LifecycleOutcome, run_lifecycle
from opsloop.registry import load_model
from tests.lifecycle.test_lifecycle import base_spec, make_frame
from tests.raycluster import RayCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on a moto server on 127.0.0.1; the S3 settings in the environment."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "OPSLOOP_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(var, value)
    import boto3  # noqa: PLC0415

    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        server.stop()


def _project(folder: Path, **spec: object) -> Project:
    (folder / "data").mkdir(parents=True)
    (folder / "opsloop.yaml").write_text(yaml.safe_dump({**base_spec(), **spec}))
    make_frame().to_csv(folder / "data" / "customers.csv", index=False)
    return open_project(folder)


def _run(proj: Project, executor: str) -> LifecycleOutcome:
    set_current_project(proj)
    try:
        outcome = run_lifecycle(proj, executor=executor, progress=False)
    finally:
        set_current_project(None)
    assert outcome.succeeded, outcome.error
    return outcome


def test_lifecycle_on_ray_equals_local(
    ray_cluster: RayCluster, pg_database_url: str, s3_bucket: str, tmp_path: Path
) -> None:
    local = _project(tmp_path / "local")
    on_ray = _project(
        tmp_path / "ray",
        store={"url": pg_database_url},
        artifacts={"url": f"s3://{s3_bucket}/artifacts"},
    )
    try:
        expected = _run(local, "local")
        got = _run(on_ray, "ray")

        assert got.outputs["train"]["best_params"] == expected.outputs["train"]["best_params"]
        assert got.outputs["train"]["best_score"] == expected.outputs["train"]["best_score"]
        assert got.outputs["evaluate"]["metrics"] == expected.outputs["evaluate"]["metrics"]
        want = local.store.models.get_version_by_alias("lc", "champion")
        have = on_ray.store.models.get_version_by_alias("lc", "champion")
        assert have.metrics == want.metrics
        assert have.dataset_digest == want.dataset_digest
        frame = make_frame(200, seed=7)
        predictions = [
            load_model("models:/lc@champion", store=p.store, artifacts=p.artifacts).predict(frame)
            for p in (local, on_ray)
        ]
        assert (predictions[0] == predictions[1]).all()

        # Every step says where it ran; the steps were spread over both nodes.
        nodes = set()
        for info in on_ray.store.steps.list(got.run_id):
            match = re.search(r"ray: step ran on node (\w+)", info.logs or "")
            assert match, f"step {info.name} has no node line: {info.logs!r}"
            nodes.add(match.group(1))
        assert nodes == set(ray_cluster.node_ids)
        run = on_ray.store.runs.get(got.run_id)
        assert run.tags["opsloop.executor"] == "ray"
    finally:
        local.close()
        on_ray.close()
