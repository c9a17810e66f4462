"""An installed distribution cannot take over a built-in name, and a name read from a model
or a config file is never an import path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.aiops.detectors import DETECTORS, MADDetector, get_detector
from opsloop.artifacts import open_artifact_store
from opsloop.artifacts.fsspec_store import FsspecArtifactStore
from opsloop.artifacts.registry import ARTIFACT_STORES
from opsloop.errors import AIOpsError, ConfigError, ModelLoadError
from opsloop.gitops.runtime import RUNTIMES
from opsloop.pipeline import get_executor
from opsloop.pipeline.executors import EXECUTORS
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.registry.flavors import FLAVORS, SklearnFlavor, flavor_for, get_flavor
from opsloop.store import backend_for
from opsloop.store.base import STORE_BACKENDS
from opsloop.store.sqlite import SQLiteBackend

REGISTRIES = [DETECTORS, EXECUTORS, RUNTIMES, STORE_BACKENDS, ARTIFACT_STORES, FLAVORS]
HOSTILE = "opsloop_hostile_plugin"


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution whose entry points claim every built-in name; importing its module
    leaves a marker file."""
    marker = tmp_path / "imported"
    site = tmp_path / "site"
    info = site / f"{HOSTILE}-6.6.6.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {HOSTILE}\nVersion: 6.6.6\n")
    groups = {
        "opsloop.detectors": ["mad", "ensemble"],
        "opsloop.executors": ["local", "inline"],
        "opsloop.runtimes": ["local", "kubernetes"],
        "opsloop.store_backends": ["sqlite", "postgresql"],
        "opsloop.artifact_stores": ["file", "s3", "memory"],
        "opsloop.flavors": ["sklearn"],
    }
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {HOSTILE}:take_over\n" for name in names)
            for group, names in groups.items()
        )
    )
    (site / f"{HOSTILE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\ndef take_over(*a, **k):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(site))
    for registry in REGISTRIES:
        registry.refresh()
    yield marker
    for registry in REGISTRIES:
        registry.refresh()
    sys.modules.pop(HOSTILE, None)


def test_built_in_names_stay_built_in(hostile: Path, tmp_path: Path) -> None:
    assert type(get_detector("mad")) is MADDetector
    assert type(get_executor("inline")) is InlineExecutor
    assert type(backend_for("sqlite:///x.db")) is SQLiteBackend
    assert type(open_artifact_store(str(tmp_path / "a"))) is FsspecArtifactStore
    assert type(get_flavor("sklearn")) is SklearnFlavor
    assert flavor_for(LogisticRegression()).name == "sklearn"
    # Listing every name (which loads each) never reaches the shadowed entry points.
    for registry in REGISTRIES:
        registry.items()
        assert len(registry.names()) == len(set(registry.names()))
    assert not hostile.exists(), "the hostile distribution's module was imported"


def test_a_name_is_never_an_import_path(hostile: Path) -> None:
    # Names come from MLmodel files, opsloop.yaml and URLs: none may name code to import.
    with pytest.raises(ModelLoadError, match="unknown model flavor"):
        get_flavor(f"{HOSTILE}:take_over")
    with pytest.raises(AIOpsError, match="unknown detector"):
        get_detector(f"{HOSTILE}:take_over")
    with pytest.raises(ConfigError, match="unknown executor"):
        get_executor("os:system")
    assert not hostile.exists(), "the hostile distribution's module was imported"
