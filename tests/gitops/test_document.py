"""Deployment documents: validation with file, line and field; YAML round trip."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from opsloop.errors import SpecError
from opsloop.gitops.document import dump_document, parse_document
from opsloop.spec.monitoring import DriftThresholds

FULL = """\
apiVersion: opsloop/v1
kind: Deployment
metadata: {name: churn-prod, labels: {team: growth}}
spec:
  model: churn
  version: 3
  traffic: [{version: 3, weight: 90}, {version: 4, weight: 10}]
  shadow: [5]
  replicas: 2
  port: 8601
  resources: {requests: {cpu: "500m", memory: "512Mi"}}
  monitoring: {window: 30s, monitors: [drift, quality], drift: {psi: 0.2}}
  remediation: churn-remediation
  syncPolicy: {automated: true, selfHeal: true, prune: true}
"""


def test_full_document_parses() -> None:
    doc = parse_document(FULL, "deploy/churn.yaml")
    assert doc.name == "churn-prod"
    assert doc.metadata.labels == {"team": "growth"}
    spec = doc.spec
    assert (spec.model, spec.version, spec.alias) == ("churn", 3, None)
    assert [(t.version, t.weight) for t in spec.traffic or []] == [(3, 90), (4, 10)]
    assert spec.shadow == [5]
    assert spec.replicas == 2
    assert spec.resources.requests.cpu == "500m"
    assert spec.sync_policy.self_heal is True
    assert spec.monitoring.window == timedelta(seconds=30)
    assert spec.monitoring.monitors == ["drift", "quality"]
    assert spec.monitoring.thresholds(DriftThresholds()).psi == 0.2


def test_dump_round_trips() -> None:
    doc = parse_document(FULL, "a.yaml")
    text = dump_document(doc)
    assert parse_document(text, "b.yaml") == doc
    assert "weight: 90\n" in text  # whole numbers stay whole
    assert text.index("model:") < text.index("port:") < text.index("syncPolicy:")


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_document(text, "deploy/x.yaml")
    return info.value


def test_server_tokens_are_secret_references_never_values() -> None:
    text = (
        FULL
        + "  auth: {token: env:CHURN_TOKEN, adminToken: file:secrets/admin, secret: churn-tok}\n"
    )
    auth = parse_document(text, "deploy/x.yaml").spec.auth
    assert auth.references() == {
        "OPSLOOP_SERVE_TOKEN": "env:CHURN_TOKEN",
        "OPSLOOP_ADMIN_TOKEN": "file:secrets/admin",
    }
    assert auth.secret == "churn-tok"
    err = _error(FULL + "  auth: {feedbackToken: s3cr3t-value}\n")
    assert err.field == "spec.auth.feedbackToken" and err.line == 15
    assert "secret committed to Git" in str(err) and "s3cr3t-value" not in str(err)
    assert _error(FULL + "  auth: {secret: Not_A_Name}\n").field == "spec.auth.secret"


def test_unknown_field_names_file_line_and_field() -> None:
    err = _error(FULL.replace("  replicas: 2\n", "  replicas: 2\n  replica: 3\n"))
    assert err.file == "deploy/x.yaml"
    assert err.line == 10
    assert err.field == "spec.replica"
    assert "unknown field" in str(err)
    assert str(err).startswith("deploy/x.yaml:10: field 'spec.replica'")


def test_version_and_alias_are_exclusive() -> None:
    err = _error(FULL.replace("  version: 3\n", "  version: 3\n  alias: champion\n"))
    assert "exactly one of 'version' or 'alias'" in str(err)
    assert err.field == "spec"
    err = _error(FULL.replace("  version: 3\n", "").replace("  traffic: [", "  #"))
    assert "exactly one" in str(err)


def test_weights_must_add_up_to_100() -> None:
    err = _error(FULL.replace("weight: 10}", "weight: 20}"))
    assert err.field == "spec.traffic"
    assert err.line == 7
    assert "add up to 100 (they add up to 110)" in str(err)


def test_main_version_must_be_in_the_split() -> None:
    err = _error(
        FULL.replace("  version: 3\n", "  version: 4\n").replace("{version: 4", "{version: 6")
    )
    assert "version 4 is not in traffic" in str(err)


def test_shadow_cannot_also_take_traffic() -> None:
    err = _error(FULL.replace("shadow: [5]", "shadow: [4]"))
    assert "both in traffic and in shadow" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("name: churn-prod", "name: Churn_Prod", "metadata.name"),
        ("port: 8601", "port: 80", "spec.port"),
        ('cpu: "500m"', 'cpu: "lots"', "spec.resources.requests.cpu"),
        ("team: growth", "team: 'no spaces'", "metadata.labels"),
        ("replicas: 2", "replicas: -1", "spec.replicas"),
        ("kind: Deployment", "kind: Deploymnet", "kind"),
    ],
)
def test_bad_values_name_their_field(old: str, new: str, field: str) -> None:
    err = _error(FULL.replace(old, new))
    assert err.field == field


def test_every_problem_is_listed() -> None:
    err = _error(FULL.replace("port: 8601", "port: 80").replace("replicas: 2", "replicas: x"))
    assert "spec.port" in str(err) and "spec.replicas" in str(err)


def test_yaml_syntax_error_names_the_line() -> None:
    err = _error("apiVersion: opsloop/v1\nkind: [Deployment\n")
    assert err.file == "deploy/x.yaml"
    assert err.line is not None
    assert "invalid YAML" in str(err)


def test_not_a_mapping() -> None:
    assert "expected a mapping" in str(_error("- a\n- b\n"))


@pytest.mark.parametrize(
    ("monitoring", "field"),
    [
        ("{window: soon}", "spec.monitoring.window"),
        ("{window: -5}", "spec.monitoring.window"),
        ("{monitors: [drift, cost]}", "spec.monitoring.monitors.1"),
        ("{monitors: []}", "spec.monitoring.monitors"),
        ("{drift: {psi_threshold: 0.2}}", "spec.monitoring.drift"),
        ("{drift: {psi: high}}", "spec.monitoring.drift"),
        ("{windows: 30s}", "spec.monitoring.windows"),
    ],
)
def test_bad_monitoring_settings_name_the_field(monitoring: str, field: str) -> None:
    text = f"""apiVersion: opsloop/v1
kind: Deployment
metadata: {{name: churn-prod}}
spec:
  model: churn
  version: 1
  port: 8601
  monitoring: {monitoring}
"""
    with pytest.raises(SpecError, match=rf"deploy/x.yaml:8: field '{re.escape(field)}"):
        parse_document(text, "deploy/x.yaml")


def test_remediation_names_a_policy() -> None:
    text = """apiVersion: opsloop/v1
kind: Deployment
metadata: {name: churn-prod}
spec: {model: churn, version: 1, port: 8601, remediation: "bad name"}
"""
    with pytest.raises(SpecError, match=r"field 'spec.remediation'"):
        parse_document(text, "deploy/x.yaml")
