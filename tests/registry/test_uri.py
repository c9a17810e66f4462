"""Model URIs: parsing and resolution against a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.artifacts import ArtifactStore
from opsloop.errors import NotFoundError, RegistryError
from opsloop.registry import ModelRef, parse_model_uri, resolve_model_uri
from opsloop.store import ModelVersionInfo, Store


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/churn/3", ModelRef(name="churn", version=3)),
        ("models:/churn@prod", ModelRef(name="churn", alias="prod")),
        ("models:/churn/latest", ModelRef(name="churn", latest=True)),
        ("models:/fraud.v2-x_y/12", ModelRef(name="fraud.v2-x_y", version=12)),
        (" models:/churn@champion ", ModelRef(name="churn", alias="champion")),
    ],
)
def test_parse_registry_uris(uri: str, ref: ModelRef) -> None:
    parsed = parse_model_uri(uri)
    assert parsed == ref
    assert str(parsed) == uri.strip()


def test_parse_local_folders(tmp_path: Path) -> None:
    assert parse_model_uri(str(tmp_path)) == tmp_path
    assert parse_model_uri(tmp_path) == tmp_path
    assert parse_model_uri(tmp_path.as_uri()) == tmp_path
    assert parse_model_uri("relative/model") == Path("relative/model")


@pytest.mark.parametrize(
    "uri",
    [
        "models:/churn",
        "models:/churn/0",
        "models:/churn/v1",
        "models://churn/1",
        "models:churn/1",
        "models:/churn@",
        "models:/churn/1/extra",
        "models:/-bad/1",
        "s3://bucket/model",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(RegistryError, match=r"model URI"):
        parse_model_uri(uri)


def _add(store: Store, name: str, digest_char: str) -> ModelVersionInfo:
    return store.models.create_version(name, artifact_digest="sha256:" + digest_char * 64)


def test_resolve_by_version_alias_latest(stores: tuple[Store, ArtifactStore]) -> None:
    store, _ = stores
    v1 = _add(store, "churn", "a")
    v2 = _add(store, "churn", "b")
    store.models.set_alias("churn", "prod", 1)
    assert resolve_model_uri("models:/churn/1", store=store) == v1.model_copy(
        update={"aliases": ["prod"]}
    )
    assert resolve_model_uri("models:/churn/latest", store=store) == v2
    resolved = resolve_model_uri("models:/churn@prod", store=store)
    assert isinstance(resolved, ModelVersionInfo)
    assert resolved.version == 1
    assert resolved.aliases == ["prod"]


def test_resolve_missing_things(stores: tuple[Store, ArtifactStore], tmp_path: Path) -> None:
    store, _ = stores
    _add(store, "churn", "a")
    with pytest.raises(NotFoundError, match="has no version 7"):
        resolve_model_uri("models:/churn/7", store=store)
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        resolve_model_uri("models:/churn@prod", store=store)
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):
        resolve_model_uri("models:/ghost/latest", store=store)
    with pytest.raises(NotFoundError, match="does not exist"):
        resolve_model_uri(str(tmp_path / "missing"), store=store)
    assert resolve_model_uri(str(tmp_path), store=store) == tmp_path
