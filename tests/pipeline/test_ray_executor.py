"""The ray executor on a real two-node cluster: the executor contract, crashes, and steps
spread over both nodes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from opsloop.artifacts import open_artifact_store
from opsloop.pipeline.executors import Executor, get_executor
from opsloop.pipeline.executors.base import StepTask
from opsloop.testing import Check, yield_executor_checks
from opsloop.testing import _steps as steps
from tests.pipeline import ray_steps_fixture as ray_steps
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
    )


def test_steps_spread_over_both_nodes_and_say_where(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    with _ray() as ex:
        futures = [ex.submit(_task(steps.parity, store.url, f"p{n}", n=n)) for n in range(4)]
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
