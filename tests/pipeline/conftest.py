"""Fixtures of the pipeline tests: a real SQLite store and a file artifact store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return open_artifact_store(str(tmp_path / "artifacts"))
