"""The artifact store contract (opsloop.testing.artifacts) on every backend: local files,
memory, and S3 (moto on 127.0.0.1); one test per backend and check."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.errors import ConfigError
from opsloop.testing import Check, check_artifact_store, yield_artifact_store_checks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["file", "memory", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    if request.param == "file":
        return open_artifact_store(str(tmp_path / "artifacts"))
    if request.param == "memory":
        return open_artifact_store(f"memory://opsloop-{uuid.uuid4().hex}")
    endpoint = request.getfixturevalue("s3_endpoint")
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    import boto3  # noqa: PLC0415

    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return open_artifact_store(
        f"s3://{bucket}/prefix", client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True
    )


CHECKS = list(yield_artifact_store_checks())


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_artifact_store_contract(store: ArtifactStore, check: Check[ArtifactStore]) -> None:
    check(store)


def test_check_artifact_store_runs_every_check(tmp_path: Path) -> None:
    check_artifact_store(open_artifact_store(str(tmp_path / "artifacts")))


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        open_artifact_store("ftp://host/path")
