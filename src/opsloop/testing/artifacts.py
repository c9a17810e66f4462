"""The artifact store contract: content addressing, folders, and a digest check on every read.

The checks write to the store, and two of them overwrite a blob with other bytes to see the
store refuse it: give them a store made for the test. They need to reach past the store's
contract to do that; for an :class:`~opsloop.artifacts.fsspec_store.FsspecArtifactStore` (and
its subclasses) they know how, any other store passes ``corrupt``::

    from opsloop.testing import check_artifact_store
    check_artifact_store(open_artifact_store("myscheme://bucket/test"))
    check_artifact_store(my_store, corrupt=lambda store, digest, data: ...)
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from opsloop.artifacts.base import ArtifactStore, digest_bytes
from opsloop.errors import ArtifactError, DigestMismatchError, NotFoundError
from opsloop.testing._core import Check, raises, run_checks

__all__ = ["Corrupt", "check_artifact_store", "yield_artifact_store_checks"]

Corrupt = Callable[[ArtifactStore, str, bytes], None]
"""Overwrites the blob stored under a digest with other bytes: ``corrupt(store, digest, data)``."""


def corrupt_fsspec(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Overwrite a blob of an fsspec-backed store in place."""
    # Lazy imports here and below (noqa: PLC0415) of opsloop.artifacts: each loads only where it is
    # used, so importing this module stays light.
    from opsloop.artifacts.fsspec_store import FsspecArtifactStore  # noqa: PLC0415

    if not isinstance(store, FsspecArtifactStore):
        raise TypeError(
            f"cannot corrupt a blob of a {type(store).__name__}: pass corrupt= to the checks"
        )
    store.fs.pipe_file(store._path(digest), data)


def check_bytes_round_trip_and_dedupe(store: ArtifactStore) -> None:
    """Bytes come back as stored, under their digest; storing them twice is one blob."""
    d = store.put_bytes(b"hello")
    assert d == digest_bytes(b"hello"), d
    assert store.put_bytes(b"hello") == d
    assert store.exists(d) and store.size(d) == 5
    assert store.get_bytes(d) == b"hello"
    assert not store.exists(digest_bytes(b"other"))


def check_file_and_dir_round_trip(store: ArtifactStore) -> None:
    """Files and folders (nested, binary) come back as stored; a folder's digest is stable."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("A")
        (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
        fd = store.put_file(src / "a.txt")
        assert store.get_file(fd, tmp_path / "out" / "a.txt").read_text() == "A"
        dd = store.put_dir(src)
        assert store.put_dir(src) == dd
        manifest = store.get_manifest(dd)
        assert sorted(manifest.files) == ["a.txt", "sub/b.bin"], sorted(manifest.files)
        assert manifest.size == 1 + 256_000, manifest.size
        out = store.get_dir(dd, tmp_path / "copy")
        assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()


def check_corrupted_blob_is_an_error(store: ArtifactStore, corrupt: Corrupt) -> None:
    """A blob whose bytes changed is refused, and nothing half-written is left behind."""
    d = store.put_bytes(b"precious")
    corrupt(store, d, b"tampered")
    with raises(DigestMismatchError, match="corrupted"):
        store.get_bytes(d)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "x.bin"
        with raises(DigestMismatchError):
            store.get_file(d, dest)
        assert not dest.exists(), "a corrupted blob was written out"
        assert not list(Path(tmp).glob(".x.bin.tmp-*")), "a temporary file was left behind"


def check_corrupted_file_inside_a_folder(store: ArtifactStore, corrupt: Corrupt) -> None:
    """A folder with one changed file is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "m"
        src.mkdir()
        (src / "model.skops").write_bytes(b"weights")
        dd = store.put_dir(src)
        inner = store.get_manifest(dd).files["model.skops"].digest
        corrupt(store, inner, b"evil")
        with raises(DigestMismatchError):
            store.get_dir(dd, Path(tmp) / "copy")


def check_missing_and_malformed(store: ArtifactStore) -> None:
    """A missing blob is NotFoundError; a bad digest, a non-manifest or a non-folder is named."""
    with tempfile.TemporaryDirectory() as tmp:
        missing = digest_bytes(b"never stored")
        with raises(NotFoundError):
            store.get_bytes(missing)
        with raises(NotFoundError):
            store.get_file(missing, Path(tmp) / "f")
        with raises(NotFoundError):
            store.size(missing)
        with raises(ArtifactError, match="not an artifact digest"):
            store.get_bytes("md5:1234")
        with raises(ArtifactError, match="not a folder manifest"):
            store.get_manifest(store.put_bytes(b"plain"))
        with raises(ArtifactError, match="not a folder"):
            store.put_dir(Path(tmp) / "nope")


def yield_artifact_store_checks(
    *, corrupt: Corrupt | None = None
) -> Iterator[Check[ArtifactStore]]:
    """Every check of the artifact store contract; each takes the store.

    Args:
        corrupt: How to overwrite a blob (default: in place, for fsspec-backed stores).
    """
    hurt = corrupt or corrupt_fsspec
    yield Check("check_bytes_round_trip_and_dedupe", check_bytes_round_trip_and_dedupe)
    yield Check("check_file_and_dir_round_trip", check_file_and_dir_round_trip)
    yield Check(
        "check_corrupted_blob_is_an_error",
        functools.partial(check_corrupted_blob_is_an_error, corrupt=hurt),
    )
    yield Check(
        "check_corrupted_file_inside_a_folder",
        functools.partial(check_corrupted_file_inside_a_folder, corrupt=hurt),
    )
    yield Check("check_missing_and_malformed", check_missing_and_malformed)


def check_artifact_store(store: ArtifactStore, *, corrupt: Corrupt | None = None) -> None:
    """Run the whole artifact store contract on ``store``.

    Args:
        store: A store made for the test (the checks write to it and corrupt blobs in it).
        corrupt: How to overwrite a blob (default: in place, for fsspec-backed stores).

    Raises:
        AssertionError: A check failed; the message names every failing check.
    """
    run_checks(yield_artifact_store_checks(corrupt=corrupt), lambda: store, "artifact store")
