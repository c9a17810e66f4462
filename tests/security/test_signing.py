"""Attacks on model signatures: someone who can write the metadata store and the artifact
store, but does not hold the project's private key, changes what a version serves. Each
change is refused when the version is loaded (which the model server does), and the
reconciler will not start a server for it, with an error naming the model and the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import update

from opsloop.context import Project
from opsloop.gitops import Reconciler
from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.gitops.types import HealthStatus
from opsloop.registry import load_model, register_model
from opsloop.secops import KeyRing, SignatureError, sign_folder
from opsloop.store import models as m
from tests.gitops.conftest import (  # noqa: F401  (fixtures)
    commit_doc,
    doc,
    repo_project,
    tiny_runtime,
)
from tests.ports import free_port


@pytest.fixture
def churn(project: Project) -> Project:
    """Model 'churn' v1 and v2 (different coefficients), registered and signed."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = (x["a"] > 0).astype(int)
    for c in (0.5, 2.0):
        register_model("churn", LogisticRegression(C=c).fit(x, y), input_example=x.head(2))
    return project


def _repoint(project: Project, version: int, change: Callable[[Path], None]) -> None:
    """Upload a changed copy of the version's files and point the version row at it."""
    info = project.store.models.get_version("churn", version)
    copy = project.dir.parent / f"copy-{version}"
    shutil.rmtree(copy, ignore_errors=True)
    project.artifacts.get_dir(info.artifact_digest, copy)
    change(copy)
    digest = project.artifacts.put_dir(copy)
    with project.store.db.write() as s:
        s.execute(
            update(m.ModelVersion)
            .where(m.ModelVersion.model_name == "churn", m.ModelVersion.version == version)
            .values(artifact_digest=digest)
        )


def _flip_a_byte(folder: Path) -> None:
    file = folder / "model.skops"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def _refused(reason: str) -> None:
    with pytest.raises(SignatureError, match=f"model 'churn' version 1: {reason}"):
        load_model("models:/churn/1")


def test_a_signed_version_loads(churn: Project) -> None:
    assert load_model("models:/churn/1").info is not None
    signature = churn.store.models.get_version("churn", 1).details["signature"]
    assert signature["format"] == "openssf-model-signing"
    assert churn.artifacts.exists(signature["bundle_digest"])
    # The private key is neither in the project (its repository, its artifact store) nor
    # in the signature bundle.
    private = KeyRing("demo").signing_key(create=False).private_key_path
    assert not private.resolve().is_relative_to(churn.dir.resolve())
    secret = private.read_bytes()
    assert not any(secret in p.read_bytes() for p in churn.dir.rglob("*") if p.is_file())


def test_a_tampered_byte_is_refused(churn: Project) -> None:
    _repoint(churn, 1, _flip_a_byte)
    _refused("files do not match the signature: changed: model.skops")


def test_an_added_file_is_refused(churn: Project) -> None:
    _repoint(churn, 1, lambda f: (f / "extra.py").write_text("import os\n"))
    _refused("files do not match the signature: added: extra.py")


def test_a_removed_file_is_refused(churn: Project) -> None:
    def remove(folder: Path) -> None:
        victim = next(p for p in sorted(folder.iterdir()) if p.name not in ("MLmodel",))
        victim.unlink()

    _repoint(churn, 1, remove)
    _refused("files do not match the signature: removed: ")


def test_a_signature_by_another_key_is_refused(churn: Project, tmp_path: Path) -> None:
    info = churn.store.models.get_version("churn", 1)
    folder = tmp_path / "files"
    churn.artifacts.get_dir(info.artifact_digest, folder)
    mallory = KeyRing("mallory", root=tmp_path / "mallory", env={})
    bundle = sign_folder(folder, mallory.signing_key())
    churn.store.models.update_version(
        "churn",
        1,
        details={
            "signature": {
                **info.details["signature"],
                "bundle_digest": churn.artifacts.put_bytes(bundle),
            }
        },
    )
    _refused(f"signed by an unknown key {mallory.signing_key().public.short_id}")


def test_a_missing_signature_is_refused(churn: Project) -> None:
    churn.store.models.update_version("churn", 1, details={"signature": None})
    _refused("missing signature")


def test_the_signature_of_another_model_is_refused(churn: Project) -> None:
    other = churn.store.models.get_version("churn", 2).details["signature"]
    churn.store.models.update_version("churn", 1, details={"signature": other})
    _refused("files do not match the signature: changed: ")


def test_a_tampered_cached_copy_is_fetched_again_and_verified(churn: Project) -> None:
    first = load_model("models:/churn/1")
    _flip_a_byte(first.path)
    again = load_model("models:/churn/1")
    assert again.path == first.path
    assert again.info is not None and again.info.version == 1


def test_the_reconciler_will_not_start_a_server_for_a_tampered_version(
    repo_project: Project,  # noqa: F811
    churn: Project,
    commit_doc: Callable[..., str],  # noqa: F811
    tiny_runtime: LocalRuntime,  # noqa: F811
) -> None:
    rec = Reconciler(repo_project, runtime=tiny_runtime, retry_backoff_s=60)
    port = free_port()
    commit_doc("churn.yaml", doc("churn", port, version=1))
    assert rec.sync().outcome("churn").action == "synced"
    _repoint(churn, 2, _flip_a_byte)
    commit_doc("churn.yaml", doc("churn", port, version=2))
    outcome = rec.sync().outcome("churn")
    assert outcome.action == "failed"
    assert outcome.health == HealthStatus.DEGRADED
    assert "model 'churn' version 2: files do not match the signature" in outcome.reason
    live = tiny_runtime.live_state()["churn"]
    assert live.spec.version == 1 and live.running == 1  # what ran keeps running
    failed = repo_project.store.deployments.history("churn")[0]
    assert failed.result == "Failed" and "signature" in failed.details["error"]


def test_the_model_server_refuses_an_unsigned_version(churn: Project) -> None:
    churn.store.models.update_version("churn", 1, details={"signature": None})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "serve", "models:/churn/1", "--port", str(free_port())],
        cwd=churn.dir,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "model 'churn' version 1: missing signature" in out.stdout + out.stderr
