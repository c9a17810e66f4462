"""Attacks on the model registry that try to run code from a model, and the checks that stop
them: at registration, at save, at load, on the registry copy, on every cached copy, and
through the model server's admin endpoint."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml

from opsloop.artifacts import ArtifactStore, digest_bytes, open_artifact_store
from opsloop.cli.serve import resolve_loader
from opsloop.context import Project, open_project, set_current_project
from opsloop.errors import ModelLoadError, UntrustedTypeError
from opsloop.registry import (
    METADATA_FILE,
    load_model,
    load_model_dir,
    register_model,
    save_model,
)
from opsloop.registry.signing import sign_version
from opsloop.serve import ServerConfig
from opsloop.store import Store, open_store
from tests.registry.forge import CMD, EVIL_TYPES, benign_model, command, evil_pipeline, forge
from tests.serve.conftest import run_server

Stores = tuple[Store, ArtifactStore]


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}", actor="mallory")
    return store, open_artifact_store(str(tmp_path / "artifacts"))


@pytest.fixture
def forged(tmp_path: Path) -> Path:
    """A folder packaged from a benign model, then given the evil one with matching digests."""
    folder = save_model(benign_model(), tmp_path / "evil", signature=CMD, project_dir=tmp_path).path
    forge(folder)
    return folder


def _nothing_registered(store: Store) -> None:
    assert store.models.list() == []
    assert store.events.list(kind="model*") == []


@pytest.mark.parametrize(
    "trusted",
    [None, ["posix.system"], ["os.system"], ["numpy.squeeze", "numpy.atleast_1d"], EVIL_TYPES],
)
def test_registering_a_model_that_calls_os_system_is_refused(
    stores: Stores, tmp_path: Path, trusted: list[str] | None
) -> None:
    store, artifacts = stores
    with pytest.raises(UntrustedTypeError, match=r"(posix|os)\.system") as err:
        register_model(
            "evil",
            evil_pipeline(),
            signature=CMD,
            trusted_types=trusted,
            store=store,
            artifacts=artifacts,
        )
    assert "can never be trusted" in err.value.message
    _nothing_registered(store)
    with pytest.raises(UntrustedTypeError, match=r"(posix|os)\.system"):
        save_model(evil_pipeline(), tmp_path / "pkg", signature=CMD, trusted_types=trusted)
    assert not (tmp_path / "pkg").exists()


def test_opsloop_yaml_cannot_trust_os_system(project: Project) -> None:
    (project.dir / "opsloop.yaml").write_text(
        "project: demo\nsecurity:\n  trusted_types: [posix.system, numpy.squeeze]\n"
    )

    set_current_project(open_project(project.dir))
    with pytest.raises(UntrustedTypeError, match=r"opsloop\.yaml.*posix\.system.*never"):
        register_model("evil", evil_pipeline(), signature=CMD)


@pytest.mark.parametrize("claim_extra", [False, True])
def test_a_forged_folder_does_not_load_and_runs_nothing(
    forged: Path, tmp_path: Path, claim_extra: bool
) -> None:
    forge(forged, claim_extra=claim_extra)
    marker = tmp_path / "pwned"
    with pytest.raises(UntrustedTypeError, match=r"posix\.system") as err:
        model = load_model(forged)
        model.predict(command(marker))
    assert "can never be trusted" in err.value.message
    # Even a caller who trusts the harmless-looking functions cannot let os.system through.
    with pytest.raises(UntrustedTypeError, match=r"posix\.system"):
        load_model_dir(forged, trusted_types=["numpy.squeeze", "numpy.atleast_1d"])
    assert not marker.exists()


def test_the_servers_admin_load_refuses_a_forged_folder(forged: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    benign = save_model(benign_model(), tmp_path / "ok", signature=CMD, project_dir=tmp_path).path
    loader = resolve_loader(None)
    config = ServerConfig(models=[loader(str(benign))], port=0, loader=loader)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/v1/admin/models", json={"action": "load", "uri": str(forged)})
        assert r.status_code == 422, r.text
        assert "posix.system" in r.json()["error"]
        assert sorted(client.get("/v1/admin/models").json()["models"]) == ["ok"]
        body = {"dataframe_split": {"columns": ["cmd"], "data": [[f"touch {marker}"]]}}
        assert client.post("/invocations", json=body).status_code == 200
    assert not marker.exists()


def test_an_edited_cached_copy_is_discarded_and_fetched_again(
    stores: Stores, tmp_path: Path
) -> None:
    store, artifacts = stores
    info = register_model("m", benign_model(), signature=CMD, store=store, artifacts=artifacts)
    cache = tmp_path / "cache"
    first = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    original = (first.path / "model.skops").read_bytes()
    forge(first.path)  # model.skops and its digest in MLmodel, consistently

    marker = tmp_path / "pwned"
    again = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    assert again.path == first.path
    assert (again.path / "model.skops").read_bytes() == original
    assert type(again.model).__name__ == "OneHotEncoder"
    again.predict(command(marker))
    assert not marker.exists()

    # MLmodel alone edited (a signature or metrics changed): also discarded.
    raw = yaml.safe_load((again.path / METADATA_FILE).read_text())
    raw["metrics"] = {"accuracy": 1.0}
    (again.path / METADATA_FILE).write_text(yaml.safe_dump(raw))
    third = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    assert third.metadata.metrics == {}


def test_a_cache_entry_replaced_by_a_link_to_a_forged_folder_is_fetched_again(
    stores: Stores, tmp_path: Path, forged: Path
) -> None:
    store, artifacts = stores
    info = register_model("m", benign_model(), signature=CMD, store=store, artifacts=artifacts)
    cache = tmp_path / "cache"
    first = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    shutil.rmtree(first.path)
    os.symlink(forged, first.path)
    again = load_model(info.uri, store=store, artifacts=artifacts, cache_dir=cache)
    assert not again.path.is_symlink()
    assert type(again.model).__name__ == "OneHotEncoder"
    assert (forged / "model.skops").is_file()  # the link was removed, not what it pointed at


def test_the_registry_copy_is_checked_against_the_allow_list_not_its_record(
    stores: Stores, forged: Path
) -> None:
    # Someone with write access to the store and the artifact store adds a version whose
    # record claims the evil types as trusted.
    # Even signed by a trusted key (a compromised build) and recorded as scanned, the
    # record's claim counts for nothing; unsigned, it is refused before that
    # (tests/security/test_signing.py), and unscanned too (tests/security/test_admission.py).
    store, artifacts = stores
    digest = artifacts.put_dir(forged)
    signed = sign_version(forged, artifacts)
    for i, claimed in enumerate((EVIL_TYPES, ["numpy.squeeze", "numpy.atleast_1d"])):
        store.models.create_version(
            f"evil{i}",
            artifact_digest=digest,
            details={
                "package": {"extra_trusted_types": claimed},
                "signature": signed,
                "scan": {"status": "passed", "findings": {}},
            },
        )
        with pytest.raises(UntrustedTypeError, match=r"posix\.system"):
            load_model(
                f"models:/evil{i}/1",
                store=store,
                artifacts=artifacts,
                cache_dir=forged.parent / "c",
            )


def test_a_symbolic_link_in_a_model_folder_is_refused(tmp_path: Path) -> None:
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    elsewhere = tmp_path / "elsewhere.skops"
    shutil.move(folder / "model.skops", elsewhere)
    os.symlink(elsewhere, folder / "model.skops")
    with pytest.raises(ModelLoadError, match=r"model\.skops is a symbolic link") as err:
        load_model(folder)
    assert "elsewhere" not in err.value.message


def test_errors_do_not_list_files_outside_the_model_folder(tmp_path: Path) -> None:
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "id_rsa-of-alice").write_text("key")
    (secret / "payroll-2024.csv").write_text("a,b")
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    os.symlink(secret, folder / "data")

    with pytest.raises(ModelLoadError, match="data is a symbolic link") as err:
        load_model(folder)
    assert "id_rsa" not in err.value.message and "payroll" not in err.value.message

    loader = resolve_loader(None)
    benign = save_model(benign_model(), tmp_path / "ok", signature=CMD, project_dir=tmp_path).path
    config = ServerConfig(models=[loader(str(benign))], port=0, loader=loader)
    with run_server(config) as running, httpx.Client(base_url=running.url) as client:
        r = client.post("/v1/admin/models", json={"action": "load", "uri": str(folder)})
    assert r.status_code == 422
    assert "id_rsa" not in r.text and "payroll" not in r.text and str(secret) not in r.text


def test_a_fifo_in_a_model_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    os.mkfifo(folder / "pipe")
    with pytest.raises(ModelLoadError, match="pipe is not a regular file"):
        load_model_dir(folder)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("input_example_file", "../secret.parquet", "input_example_file"),
        ("files", {"../../etc/passwd": "sha256:" + "0" * 64}, "not a path inside the folder"),
        ("model_file", "/etc/passwd", "not a path inside the folder"),
    ],
)
def test_mlmodel_cannot_point_outside_the_folder(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    pd.DataFrame({"cmd": ["x"]}).to_parquet(tmp_path / "secret.parquet")
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw[field] = {**raw["files"], **value} if isinstance(value, dict) else value
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelLoadError, match=match):
        load_model_dir(folder)


def test_a_project_alias_of_os_system_cannot_be_trusted(tmp_path: Path) -> None:
    # The file names a project module's attribute that is os.system under another name.
    data = sio.dumps(evil_pipeline())
    data = _rename_in_schema(data, ("posix", "system"), ("tests.registry.trust_aliases", "run"))
    folder = save_model(benign_model(), tmp_path / "pkg", signature=CMD, project_dir=tmp_path).path
    (folder / "model.skops").write_bytes(data)
    raw = yaml.safe_load((folder / METADATA_FILE).read_text())
    raw["files"]["model.skops"] = digest_bytes(data)
    (folder / METADATA_FILE).write_text(yaml.safe_dump(raw))
    trusted = ["numpy.squeeze", "numpy.atleast_1d", "tests.registry.trust_aliases.run"]
    with pytest.raises(
        UntrustedTypeError, match=r"can never be trusted: tests\.registry\.trust_aliases\.run"
    ):
        load_model_dir(folder, trusted_types=trusted)
    marker = tmp_path / "pwned"
    assert not marker.exists()


def _rename_in_schema(data: bytes, old: tuple[str, str], new: tuple[str, str]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if (node.get("__module__"), node.get("__class__")) == old:
                node["__module__"], node["__class__"] = new
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "schema.json":
                content = json.dumps(schema).encode()
            dst.writestr(item, content)
    return out.getvalue()


def test_the_evil_model_really_runs_commands_when_trusted(tmp_path: Path) -> None:
    # The premise of these tests: skops, told to trust what the file names, runs the command.
    marker = tmp_path / "pwned"
    model = sio.loads(sio.dumps(evil_pipeline()), trusted=EVIL_TYPES)
    model.transform(command(marker))
    assert marker.exists()
    assert np.asarray(model.transform(command(tmp_path / "x"))).shape == (1,)
