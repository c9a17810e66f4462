"""Every registered version is scanned; the result is kept in its details."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.artifacts import open_artifact_store
from opsloop.errors import RegistryError
from opsloop.registry import register_model, save_model
from opsloop.secops import scan_status
from opsloop.store import open_store


def test_register_model_records_the_scan(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    kw = {"store": store, "artifacts": artifacts}
    by_object = register_model("m", model, input_example=x, **kw)
    folder = save_model(model, tmp_path / "pkg", input_example=x, project_dir=tmp_path).path
    by_path = register_model("m", path=folder, **kw)
    for version in (by_object, by_path):
        scan = store.models.get_version("m", version.version).details["scan"]
        assert scan["status"] == "passed"
        assert scan["scanner"] == "opsloop-model-scan"
        assert scan["version"]
        assert dt.datetime.fromisoformat(scan["time"]).tzinfo is not None
        assert scan["findings"] == {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}
        assert scan_status(version.details) == "passed"
    with pytest.raises(RegistryError, match="'scan' is reserved"):
        register_model("m", model, input_example=x, details={"scan": {}}, **kw)
