"""Names with a trailing newline, a carriage return, none at all or too many characters are
refused everywhere a model, alias or policy name enters: the registry API, the store, model
URIs, deployment documents and remediation policies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydantic
import pytest
from sklearn.preprocessing import StandardScaler

from opsloop.aiops.rules import ThresholdRule
from opsloop.artifacts import open_artifact_store
from opsloop.errors import PipelineError, RegistryError, SpecError, TrackingError
from opsloop.gitops.document import parse_document
from opsloop.names import NAME_PATTERN, check_name, is_name
from opsloop.pipeline import pipeline, step
from opsloop.registry import ColumnSpec, parse_model_uri, register_model, set_alias
from opsloop.spec.remediation import RemediationPolicy
from opsloop.store import open_store

CMD = [ColumnSpec(name="x", dtype="float64")]


def benign_model() -> StandardScaler:
    """A small fitted model to register."""
    return StandardScaler().fit(pd.DataFrame({"x": [1.0, 2.0, 4.0]}))


BAD = ["churn\n", "churn\r", "churn\r\n", "", "a" * 129, "\nchurn", "churn\x00", "-churn"]
GOOD = ["churn", "a" * 128, "churn-v2.1_b", "7"]


@pytest.mark.parametrize("name", BAD)
def test_the_name_rule_refuses(name: str) -> None:
    assert not is_name(name)
    with pytest.raises(ValueError, match="invalid model name"):
        check_name("model", name)
    with pytest.raises(TrackingError, match="invalid alias name"):
        check_name("alias", name, TrackingError)


@pytest.mark.parametrize("name", GOOD)
def test_the_name_rule_accepts(name: str) -> None:
    assert is_name(name)
    assert check_name("model", name) == name
    assert NAME_PATTERN.startswith("[A-Za-z0-9]")


@pytest.mark.parametrize("name", BAD)
def test_registry_and_store_refuse_bad_names(tmp_path: Path, name: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}", actor="t")

    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    kw = {"signature": CMD, "store": store, "artifacts": artifacts}
    with pytest.raises(RegistryError, match="invalid model name"):
        register_model(name, benign_model(), **kw)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="invalid alias name"):
        register_model("churn", benign_model(), alias=name, **kw)  # type: ignore[arg-type]
    with pytest.raises(TrackingError, match="invalid model name"):
        store.models.create(name)
    with pytest.raises(TrackingError, match="invalid model name"):
        store.models.create_version(name, artifact_digest="sha256:" + "0" * 64)
    register_model("churn", benign_model(), **kw)  # type: ignore[arg-type]
    with pytest.raises(TrackingError, match="invalid alias name"):
        set_alias("churn", name, 1, store=store)
    with pytest.raises(TrackingError, match="invalid alias name"):
        store.models.create_version("churn", artifact_digest="sha256:" + "0" * 64, alias=name)
    assert [m.name for m in store.models.list()] == ["churn"]
    assert store.models.get("churn").aliases == {}
    store.close()


@pytest.mark.parametrize("name", BAD)
def test_model_uris_refuse_bad_names(name: str) -> None:
    uris = [f"models:/{name}/1", f"models:/{name}@prod", f"models:/churn@{name}x"]
    for uri in uris if name else uris[:2]:
        with pytest.raises(RegistryError, match="malformed model URI"):
            parse_model_uri(uri)
    assert parse_model_uri(" models:/churn@prod\n") == parse_model_uri("models:/churn@prod")


DOC = """\
apiVersion: opsloop/v1
kind: Deployment
metadata: {{name: {deployment}}}
spec:
  model: {model}
  alias: {alias}
  port: 8601
"""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", '"churn\\n"'),
        ("model", '"churn\\r"'),
        ("model", '""'),
        ("model", "a" * 129),
        ("alias", '"prod\\n"'),
        ("deployment", '"churn-prod\\n"'),
    ],
)
def test_deployment_documents_refuse_bad_names(field: str, value: str) -> None:
    names = {"deployment": "churn-prod", "model": "churn", "alias": "prod", field: value}
    parse_document(DOC.format(deployment="churn-prod", model="churn", alias="prod"), "d.yaml")
    with pytest.raises(SpecError):
        parse_document(DOC.format(**names), "deploy/churn.yaml")


@pytest.mark.parametrize("name", BAD)
def test_remediation_policies_refuse_bad_names(name: str) -> None:
    RemediationPolicy.model_validate(
        {"name": "ok", "on": {"kinds": ["data_drift"]}, "actions": ["retrain"]}
    )
    with pytest.raises(pydantic.ValidationError, match="invalid policy name"):
        RemediationPolicy.model_validate(
            {"name": name, "on": {"kinds": ["data_drift"]}, "actions": ["retrain"]}
        )


def test_alert_rules_refuse_a_trailing_newline() -> None:
    ThresholdRule.model_validate({"name": "rule:x", "series": "s", "threshold": 1})
    with pytest.raises(pydantic.ValidationError, match="not a valid rule name"):
        ThresholdRule.model_validate({"name": "rule\n", "series": "s", "threshold": 1})


@pytest.mark.parametrize("bad", ["train\n", "train\r", "x" * 129])
def test_step_and_pipeline_names_are_matched_whole(bad: str) -> None:
    def f() -> int:
        return 1

    with pytest.raises(PipelineError, match="invalid step name"):
        step(name=bad)(f)
    with pytest.raises(PipelineError, match="invalid pipeline name"):
        pipeline(name=bad)(f)


def test_step_output_names_are_matched_whole() -> None:
    def f() -> int:
        return 1

    with pytest.raises(PipelineError, match="invalid output name"):
        step(outputs="out\n")(f)
