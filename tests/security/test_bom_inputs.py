"""The ML-BOM never describes files other than those registered, and hostile version details
cannot make it invalid, pass a gate that did not say so, or give a made-up digest the standing
of a hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from sklearn.linear_model import LogisticRegression

from opsloop.artifacts import Manifest
from opsloop.context import Project
from opsloop.registry import register_model
from opsloop.secops.bom import ml_bom_json


def _model() -> tuple[LogisticRegression, pd.DataFrame]:
    x = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 5})
    return LogisticRegression().fit(x, (x["a"] > 20).astype(int)), x


def test_bom_refuses_a_tampered_artifact(project: Project, tmp_path: Path) -> None:
    model, x = _model()
    info = register_model("churn", model, input_example=x)
    manifest = Manifest.model_validate_json(project.artifacts.get_bytes(info.artifact_digest))
    blob = manifest.files["model.skops"].digest.split(":", 1)[1]
    path = project.state_dir / "artifacts" / "sha256" / blob[:2] / blob
    assert path.is_file()
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"\0")

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    out = tmp_path / "bom.json"
    done = subprocess.run(
        [sys.executable, "-m", "opsloop", "bom", "models:/churn/1", "--out", str(out)],
        cwd=project.dir,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert f"artifact sha256:{blob}" in done.stderr and "restore the blob" in done.stderr
    assert not out.exists()


def test_hostile_details_stay_valid_and_claim_no_hash(project: Project, tmp_path: Path) -> None:
    model, x = _model()
    info = register_model(
        "churn",
        model,
        input_example=x,
        dataset_digest="not-a-digest",
        details={
            "gates": [
                {"name": 'x", "type": "evil', "passed": "yes"},
                "not a gate",
                {"passed": True},
            ],
            "gates_passed": 1,
            "dataset": {
                "digest": "not-a-digest",
                "source": "../../etc/passwd",
                "columns": {"<script>": "object"},
            },
            "champion_metrics": {"auc": "high", "f1": 0.5},
        },
    )
    folder = project.artifacts.get_dir(info.artifact_digest, tmp_path / "f")
    text = ml_bom_json(info, folder)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    [data] = [c for c in bom["components"] if c["type"] == "data"]
    assert "hashes" not in data
    [model_entry] = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    props = {p["name"]: p["value"] for p in model_entry["modelCard"]["properties"]}
    assert props == {
        'opsloop:gate:x", "type": "evil': "failed",
        "opsloop:gates_passed": "false",
        "opsloop:champion_metric:f1": "0.5",
    }
