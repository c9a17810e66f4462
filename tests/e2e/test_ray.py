"""Ray on a real two-node cluster, in one module so that one test worker starts the one
cluster: the ray executor's contract, crashes, steps spread over both nodes and their declared
resources; and the lifecycle with PostgreSQL and S3 (moto), which equals the local executor's
run (same tuning, same metrics, same registered model) with its steps on both nodes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from opsloop.artifacts import open_artifact_store
from opsloop.context import Project, open_project, set_current_project
from opsloop.lifecycle import LifecycleOutcome, run_lifecycle
from opsloop.pipeline.executors import Executor, get_executor
from opsloop.pipeline.executors.base import StepTask
from opsloop.registry import load_model
from opsloop.testing import Check, yield_executor_checks
from opsloop.testing import _steps as steps
from tests.lifecycle.test_lifecycle import base_spec, make_frame
from tests.pipeline import ray_steps_fixture as ray_steps
from tests.ports import free_port
from tests.raycluster import RayCluster

pytestmark = pytest.mark.slow


def _ray() -> Executor:
    return get_executor("ray", max_workers=2)


@pytest.mark.parametrize("check", list(yield_executor_checks()), ids=lambda c: c.name)
def test_ray_executor_contract(
    ray_cluster: RayCluster, check: Check[Callable[[], Executor]]
) -> None:
    check(_ray)


def _task(step: object, artifacts_url: str, name: str, **params: object) -> StepTask:
    s = step  # a Step
    return StepTask(
        run_id="r",
        step=name,
        module=s.module,  # type: ignore[attr-defined]
        qualname=s.qualname,  # type: ignore[attr-defined]
        source_digest=s.source_digest,  # type: ignore[attr-defined]
        params=dict(params),
        inputs={},
        outputs=s.outputs,  # type: ignore[attr-defined]
        artifacts_url=artifacts_url,
        module_file=s.source_file,  # type: ignore[attr-defined]
        num_cpus=s.num_cpus,  # type: ignore[attr-defined]
        memory=s.memory,  # type: ignore[attr-defined]
    )


def test_steps_spread_over_both_nodes_and_say_where(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    with _ray() as ex:
        futures = [ex.submit(_task(ray_steps.nap, store.url, f"p{n}", n=n)) for n in range(4)]
        results = [f.result(timeout=120) for f in futures]
    assert all(r.ok for r in results), [r.error for r in results]
    nodes = {m.group(1) for r in results if (m := re.search(r"ran on node (\w+)", r.logs))}
    assert nodes == set(ray_cluster.node_ids), (nodes, ray_cluster.node_ids)


def test_a_dying_worker_fails_only_its_step(ray_cluster: RayCluster, tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    with _ray() as ex:
        dead = ex.submit(_task(ray_steps.die, store.url, "die")).result(timeout=120)
        alive = ex.submit(_task(steps.parity, store.url, "p", n=3)).result(timeout=120)
    assert not dead.ok and dead.crashed, dead
    assert "failed before it reported a result" in (dead.error or ""), dead.error
    assert alive.ok, alive.error


def test_declared_resources_are_reserved(ray_cluster: RayCluster, tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    with _ray() as ex:
        result = ex.submit(_task(ray_steps.resources, store.url, "res")).result(timeout=120)
    assert result.ok, result.error
    from opsloop.pipeline.materializers import load_value  # noqa: PLC0415

    assert load_value(result.outputs["output"], store) == {"CPU": 0.5, "memory": 64 * 2**20}


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on a moto server on 127.0.0.1; the S3 settings in the environment."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    port = free_port()
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
        assert have.details["gates"] == want.details["gates"]
        assert have.dataset_digest == want.dataset_digest
        frame = make_frame(200, seed=7)
        predictions = []
        for p in (local, on_ray):
            # Verified with the keys of the project it belongs to, as the current project.
            set_current_project(p)
            try:
                predictions.append(load_model("models:/lc@champion").predict(frame))
            finally:
                set_current_project(None)
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
