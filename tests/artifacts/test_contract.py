"""The artifact store contract on every backend: local files, memory, and S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.artifacts import ArtifactStore, digest_bytes, open_artifact_store
from opsloop.artifacts.fsspec_store import FsspecArtifactStore
from opsloop.errors import ArtifactError, ConfigError, DigestMismatchError, NotFoundError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

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
    import boto3

    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return open_artifact_store(
        f"s3://{bucket}/prefix", client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True
    )


def _corrupt(store: ArtifactStore, digest: str, data: bytes) -> None:
    assert isinstance(store, FsspecArtifactStore)
    store.fs.pipe_file(store._path(digest), data)


def test_bytes_round_trip_and_dedupe(store: ArtifactStore) -> None:
    d = store.put_bytes(b"hello")
    assert d == digest_bytes(b"hello")
    assert store.put_bytes(b"hello") == d
    assert store.exists(d) and store.size(d) == 5
    assert store.get_bytes(d) == b"hello"
    assert not store.exists(digest_bytes(b"other"))


def test_file_and_dir_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    fd = store.put_file(src / "a.txt")
    assert store.get_file(fd, tmp_path / "out" / "a.txt").read_text() == "A"
    dd = store.put_dir(src)
    assert store.put_dir(src) == dd
    manifest = store.get_manifest(dd)
    assert sorted(manifest.files) == ["a.txt", "sub/b.bin"]
    assert manifest.size == 1 + 256_000
    out = store.get_dir(dd, tmp_path / "copy")
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()


def test_corrupted_blob_is_an_error(store: ArtifactStore, tmp_path: Path) -> None:
    d = store.put_bytes(b"precious")
    _corrupt(store, d, b"tampered")
    with pytest.raises(DigestMismatchError, match="corrupted"):
        store.get_bytes(d)
    dest = tmp_path / "x.bin"
    with pytest.raises(DigestMismatchError):
        store.get_file(d, dest)
    assert not dest.exists()  # nothing half-written is left behind
    assert not list(tmp_path.glob(".x.bin.tmp-*"))


def test_corrupted_file_inside_a_folder(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "model.skops").write_bytes(b"weights")
    dd = store.put_dir(src)
    inner = store.get_manifest(dd).files["model.skops"].digest
    _corrupt(store, inner, b"evil")
    with pytest.raises(DigestMismatchError):
        store.get_dir(dd, tmp_path / "copy")


def test_missing_and_malformed(store: ArtifactStore, tmp_path: Path) -> None:
    missing = digest_bytes(b"never stored")
    with pytest.raises(NotFoundError):
        store.get_bytes(missing)
    with pytest.raises(NotFoundError):
        store.get_file(missing, tmp_path / "f")
    with pytest.raises(NotFoundError):
        store.size(missing)
    with pytest.raises(ArtifactError, match="not an artifact digest"):
        store.get_bytes("md5:1234")
    with pytest.raises(ArtifactError, match="not a folder manifest"):
        store.get_manifest(store.put_bytes(b"plain"))
    with pytest.raises(ArtifactError, match="not a folder"):
        store.put_dir(tmp_path / "nope")


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        open_artifact_store("ftp://host/path")
