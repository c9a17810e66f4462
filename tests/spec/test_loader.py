"""opsloop.yaml: every error names the file, the line and the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.errors import SpecError
from opsloop.settings import load_settings
from opsloop.spec import SCHEMA_VERSION, find_project_dir, load_spec, parse_spec

GOOD = """\
project: churn
problem: {type: classification, target: churned, metric: roc_auc}
data:
  source: data/customers.parquet
  time_column: signup_date
train:
  candidates: [logistic_regression, random_forest]
  tune: {trials: 30, timeout_s: 120}
evaluate:
  gates:
    roc_auc: {min: 0.80}
register: {model: churn, alias_on_pass: champion}
"""


def test_valid_spec() -> None:
    spec = parse_spec(GOOD)
    assert spec.version == SCHEMA_VERSION and spec.project == "churn"
    assert spec.problem is not None and spec.problem.primary_metric == "roc_auc"
    assert spec.train.tune.trials == 30
    assert spec.registration is not None and spec.registration.model == "churn"
    assert spec.has_lifecycle


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("project: x\ntrain:\n  tune:\n    trials: many\n", 4, "train.tune.trials", "integer"),
        ("project: x\nfoo: 1\n", 2, "foo", "unknown key"),
        ("project: x\ntrain:\n  candidats: [a]\n", 3, "train.candidats", "unknown key"),
        ("description: y\nproblem: {type: classification, target: y}\n", 1, "project", "missing"),
        (
            "project: x\nproblem:\n  type: clustering\n  target: y\n",
            3,
            "problem.type",
            "clustering",
        ),
        ("project: x\nregister: {alias_on_pass: c}\n", 2, "register.model", "missing"),
        ("project: x\nproject: y\n", 2, "project", "duplicate key"),
        ("version: 2\nproject: x\n", 1, "version", "not supported"),
        ("project: x\npipelines: {train: nocolon}\n", 2, "pipelines", "module:function"),
    ],
)
def test_errors_name_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "proj/opsloop.yaml")
    err = info.value
    assert (err.file, err.line, err.field) == ("proj/opsloop.yaml", line, field)
    assert words in str(err)
    assert str(err).startswith(f"proj/opsloop.yaml:{line}: field '{field}'")


def test_all_problems_are_listed() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("project: x\nfoo: 1\nbar: 2\n")
    assert "and 1 more" in str(info.value) and "'bar'" in str(info.value)


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(SpecError, match=r"opsloop.yaml:4: invalid YAML, column \d+.*line 3"):
        parse_spec("project: x\ntrain:\n  tune: [1, 2\n")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_empty_or_not_a_mapping(text: str) -> None:
    with pytest.raises(SpecError, match=r"opsloop\.yaml:1"):
        parse_spec(text)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path)
    bad = tmp_path / "opsloop.yaml"
    bad.write_bytes(b"project: x\ndescription: caf\xe9\n")
    with pytest.raises(SpecError, match=r"opsloop.yaml:2: not UTF-8"):
        load_spec(bad)


def test_find_project_dir(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: x\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_dir(deep) == tmp_path.resolve()
    assert find_project_dir(Path("/")) is None


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec("project: x\nstore: {url: 'sqlite:///from-yaml.db'}\nartifacts: {url: /a}\n")
    monkeypatch.delenv("OPSLOOP_STORE_URL", raising=False)
    monkeypatch.delenv("OPSLOOP_ARTIFACT_URL", raising=False)
    s = load_settings(tmp_path, spec)
    assert s.store_url == "sqlite:///from-yaml.db" and s.artifact_url == "/a"
    monkeypatch.setenv("OPSLOOP_STORE_URL", "sqlite:///from-env.db")
    assert load_settings(tmp_path, spec).store_url == "sqlite:///from-env.db"
    assert load_settings(tmp_path, None).artifact_url is None


@pytest.mark.parametrize(
    ("text", "line", "field", "near"),
    [
        ("project: x\ntrian: {candidates: [a]}\n", 2, "trian", "train"),
        (
            "project: x\ntrain:\n  tune: {trials: 3, timout_s: 4}\n",
            3,
            "train.tune.timout_s",
            "timeout_s",
        ),
        (
            "project: x\nproblem: {type: regression, target: y, metirc: rmse}\n",
            2,
            "problem.metirc",
            "metric",
        ),
        (
            "project: x\nregister: {model: m, alias_on_pas: champion}\n",
            2,
            "register.alias_on_pas",
            "alias_on_pass",
        ),
        (
            "project: x\nmonitoring:\n  prediction_log:\n    retention: {max_age_dayz: 3}\n",
            4,
            "monitoring.prediction_log.retention.max_age_dayz",
            "max_age_days",
        ),
        ("project: x\nStore: {url: 'sqlite:///x.db'}\n", 2, "Store", "store"),
    ],
    ids=["top", "nested", "problem", "alias-of-register", "deep", "case"],
)
def test_unknown_keys_suggest_the_near_miss_at_every_level(
    text: str, line: int, field: str, near: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "opsloop.yaml")
    assert str(info.value) == (
        f"opsloop.yaml:{line}: field '{field}': unknown key; did you mean '{near}'?"
    )


def test_a_key_far_from_every_known_one_gets_no_guess() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("project: x\nzzqx: 1\n", "opsloop.yaml")
    assert str(info.value) == "opsloop.yaml:2: field 'zzqx': unknown key"
