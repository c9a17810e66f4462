"""Rightsizing: replicas and requests from observed utilisation under the latency objective,
the monthly saving, and ``opsloop costs recommend --apply`` as a Git commit."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from opsloop.context import open_project
from opsloop.finops.rightsize import Sizing, cpu_text, memory_text, recommend
from opsloop.gitops import parse_document
from opsloop.spec.finops import FinopsSection
from opsloop.store import UsageRecord

from ..cli.test_cli import opsloop
from .test_allocate import frame

if TYPE_CHECKING:
    from pathlib import Path

H = datetime(2026, 12, 1, tzinfo=UTC)
FINOPS = FinopsSection.model_validate(
    {"rate_cards": [{"vcpu_hour": 0.04, "memory_gb_hour": 0.005}]}
)
# Four replicas of 2 vCPU / 4 GB: 0.5 vCPU used in all, each holding 0.5 GB.
BIG = Sizing(replicas=4, cpu=2.0, memory_gb=4.0, latency_p99_ms=300)


def _usage(hours: int = 48, cpu: float = 0.5, replicas: int = 4):  # type: ignore[no-untyped-def]
    return frame(
        *[
            (
                H + timedelta(hours=h),
                "replica",
                {"deployment": "prod"},
                {
                    "wall_s": replicas * 3600,
                    "cpu_s": cpu * 3600,
                    "memory_gb_s": 0.5 * replicas * 3600,
                    "reserved_cpu_s": 2 * replicas * 3600,
                },
            )
            for h in range(hours)
        ]
    )


def test_an_oversized_deployment_within_its_latency_objective_shrinks() -> None:
    rec = recommend("prod", _usage(), BIG, FINOPS, latency_p99_ms=120, now=H)
    # 0.5 vCPU at 70 % is 0.714: one replica of 750m; 0.5 GB + 20 % is 640Mi.
    assert (rec.replicas, cpu_text(rec.cpu), memory_text(rec.memory_gb)) == (1, "750m", "640Mi")
    saving = (4 * (2 * 0.04 + 4 * 0.005) - (0.75 * 0.04 + 0.625 * 0.005)) * 730
    assert rec.monthly_saving == pytest.approx(saving)
    assert rec.changes and rec.hours == 48
    assert rec.to_json()["recommended"] == {"replicas": 1, "cpu": "750m", "memory": "640Mi"}


def test_latency_over_its_objective_adds_a_replica_and_no_objective_keeps_them() -> None:
    slow = recommend("prod", _usage(), BIG, FINOPS, latency_p99_ms=450, now=H)
    assert (slow.replicas, slow.cpu, slow.memory_gb) == (5, 2.0, 4.0)
    assert slow.monthly_saving < 0 and "over its objective" in slow.reason
    free = Sizing(replicas=4, cpu=2.0, memory_gb=4.0)
    kept = recommend("prod", _usage(), free, FINOPS, latency_p99_ms=120, now=H)
    assert kept.replicas == 4 and cpu_text(kept.cpu) == "200m"
    assert "no latency objective" in kept.reason
    floor = Sizing(replicas=4, cpu=2.0, memory_gb=4.0, latency_p99_ms=300, min_replicas=2)
    assert recommend("prod", _usage(), floor, FINOPS, latency_p99_ms=120, now=H).replicas == 2
    nothing = recommend("prod", _usage(hours=1).iloc[0:0], BIG, FINOPS, now=H)
    assert not nothing.changes and nothing.monthly_saving == 0


DOC = """\
apiVersion: opsloop/v1
kind: Deployment
metadata:
  name: prod
spec:
  model: churn
  version: 1
  replicas: 4
  port: 18080
  resources:
    requests: {cpu: '2', memory: 4Gi}
    limits: {cpu: '4', memory: 512Mi}
  objectives: {latency_p99_ms: 300}
"""


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    done = subprocess.run(
        ["git", *identity, *args], check=False, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_recommend_apply_commits_the_deployment_document(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: demo\n")
    (tmp_path / ".gitignore").write_text(".opsloop/\n")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "prod.yaml").write_text(DOC)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "init")
    proj = open_project(tmp_path)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    proj.store.usage.add(
        [
            UsageRecord(
                start + timedelta(hours=h),
                "replica",
                {"deployment": "prod"},
                {"wall_s": 4 * 3600, "cpu_s": 0.5 * 3600, "memory_gb_s": 2 * 3600},
            )
            for h in range(6)
        ]
    )
    proj.store.series.append(
        [("service.latency_p99", {"deployment": "prod"}, start + timedelta(hours=1), 80.0)]
    )
    proj.close()
    out = opsloop("costs", "recommend", "--apply", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 x 2 / 4Gi" in out.stdout and "1 x 750m / 640Mi" in out.stdout
    assert "267.82" in out.stdout
    assert "committed" in out.stdout
    document = parse_document(_git(tmp_path, "show", "HEAD:deploy/prod.yaml"), "prod.yaml")
    assert document.spec.replicas == 1
    assert document.spec.resources.requests.cpu == "750m"
    # A limit below the new request is raised to it; one above it is kept.
    assert document.spec.resources.limits.memory == "640Mi"
    assert document.spec.resources.limits.cpu == "4"
    assert "Rightsizing from 6 hours of usage" in _git(tmp_path, "log", "-1", "--format=%B")
