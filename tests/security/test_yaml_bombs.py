"""Hostile YAML: alias bombs, deep nesting, huge files and Python tags, wherever opsloop reads
YAML (the spec, deployment documents, Kubernetes manifests, MLmodel files, alert rules,
lifecycle parameters).

Each must be refused with one line naming the file, fast: the limits are checked on the
parser's events before anything is composed. Both the libyaml loader and the pure-Python one
(used when PyYAML was built without libyaml) are attacked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from opsloop.aiops.rules import load_alerts_section
from opsloop.context import Project, open_project
from opsloop.errors import ConfigError, GitOpsError, ModelLoadError, SpecError
from opsloop.gitops.document import parse_document
from opsloop.gitops.loader import load_desired_state
from opsloop.gitops.repo import GitRepo
from opsloop.gitops.runtime.kubernetes import KubernetesRuntime
from opsloop.lifecycle.driver import lifecycle_params
from opsloop.registry.packaging import METADATA_FILE, read_metadata
from opsloop.spec import load_spec, parse_spec, yamlpos
from opsloop.spec.yamlpos import MAX_DEPTH, load_yaml, load_yaml_all, load_yaml_with_lines

# Generous against a loaded machine: with libyaml the refusals take milliseconds, the old code
# from seconds to a minute (and then ran out of memory). The pure-Python scanner looks up to
# 1,024 characters ahead for a possible key at every bracket, which costs up to half a second.
FAST = {"libyaml": 2.0, "python": 6.0}
budget = FAST["libyaml"]


def laughs(prefix: str = "", levels: int = 9, width: int = 9, indent: str = "") -> str:
    """The "billion laughs": each level is a list of ``width`` aliases of the level below."""
    lines = [f"{indent}l0: &l0 [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return prefix + "\n".join(lines) + "\n"


BOMB_SPEC = laughs("project: x\n")
DEEP = "project: x\nnested: " + "[" * 100_000 + "]" * 100_000 + "\n"
# Block nesting needs its indentation: 1,000 levels make a 1 MB file, within the size limit.
DEEP_BLOCK = "project: x\nnested:\n" + "".join("  " * i + "  -\n" for i in range(1_000))
PYTHON_TAG = "project: x\ndescription: !!python/object/apply:os.system ['touch {marker}']\n"


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> float:
    """Every attack against both of PyYAML's loaders; the seconds a refusal may take."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yamlpos, "_Loader", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(yamlpos, "_Loader", yaml.SafeLoader)
    # refused() reads the budget of the loader under attack.
    monkeypatch.setattr(sys.modules[__name__], "budget", FAST[str(request.param)])
    return FAST[str(request.param)]


def refused(
    call: Callable[[], object], error: type[Exception], file: str, *words: str
) -> Exception:
    """Run ``call``; it must raise ``error`` within the budget, as one line naming ``file``."""
    started = time.perf_counter()
    with pytest.raises(error) as info:
        call()
    elapsed = time.perf_counter() - started
    assert elapsed < budget, f"took {elapsed:.2f}s"
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    assert file in text, text
    for word in words:
        assert word in text, text
    return info.value


def test_the_spec_alias_bomb_is_refused(tmp_path: Path, loader: float) -> None:
    (tmp_path / "opsloop.yaml").write_text(BOMB_SPEC)
    assert len(BOMB_SPEC) < 600
    err = refused(lambda: load_spec(tmp_path), SpecError, "opsloop.yaml", "aliases expand")
    assert isinstance(err, SpecError) and err.line is not None


def test_the_spec_alias_bomb_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text(BOMB_SPEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    first = out.stderr.splitlines()[0]
    assert "opsloop.yaml:" in first and "aliases expand" in first, out.stderr
    # The interpreter and the CLI's imports start in a few seconds; the old code ran a minute.
    assert elapsed < 30


def test_a_deployment_document_bomb_is_refused(project: Project, loader: float) -> None:
    text = "apiVersion: opsloop/v1\nkind: Deployment\n" + laughs(indent="")
    refused(lambda: parse_document(text, "deploy/bomb.yaml"), SpecError, "deploy/bomb.yaml")
    folder = project.dir / "deploy"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(text)
    (folder / "deep.yaml").write_text("kind: Deployment\nspec: " + "[" * 100_000 + "\n")
    ident = ["-c", "user.name=T", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "deploy"], ["commit", "-q", "-m", "bombs"]):
        subprocess.run(["git", *ident, *args], cwd=project.dir, check=True, capture_output=True)
    for revision in (None, "HEAD"):
        started = time.perf_counter()
        state = load_desired_state(GitRepo(project.dir), "deploy", revision=revision)
        assert time.perf_counter() - started < 3 * loader
        problems = {p.file: p.message for p in state.problems}
        assert set(problems) == {"deploy/bomb.yaml", "deploy/deep.yaml"}
        assert "aliases expand" in problems["deploy/bomb.yaml"]
        assert all("\n" not in m for m in problems.values())


def test_a_kubernetes_manifest_bomb_is_refused(tmp_path: Path, loader: float) -> None:
    runtime = KubernetesRuntime(tmp_path)
    manifest = tmp_path / "evil.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: Deployment\n---\n" + laughs())
    refused(runtime.live_state, GitOpsError, "evil.yaml", "aliases expand")
    manifest.write_text("a: " + "[" * 100_000 + "\n")
    refused(runtime.live_state, GitOpsError, "evil.yaml")


def test_an_mlmodel_bomb_is_refused(tmp_path: Path, loader: float) -> None:
    (tmp_path / METADATA_FILE).write_text("format_version: 1\n" + laughs())
    refused(lambda: read_metadata(tmp_path), ModelLoadError, METADATA_FILE, "aliases expand")
    (tmp_path / METADATA_FILE).write_text("format_version: 1\nflavor: " + "[" * 100_000)
    refused(lambda: read_metadata(tmp_path), ModelLoadError, METADATA_FILE)
    (tmp_path / METADATA_FILE).write_text(PYTHON_TAG.format(marker=tmp_path / "pwned"))
    refused(lambda: read_metadata(tmp_path), ModelLoadError, METADATA_FILE, "!!python/")
    assert not (tmp_path / "pwned").exists()


def test_an_alert_rule_bomb_is_refused(tmp_path: Path, loader: float) -> None:
    rules = "project: x\nalerts:\n  rules:\n" + laughs(indent="    ")
    (tmp_path / "opsloop.yaml").write_text(rules)
    refused(lambda: load_alerts_section(tmp_path), SpecError, "opsloop.yaml", "aliases expand")


def test_a_lifecycle_parameter_bomb_is_refused(tmp_path: Path, loader: float) -> None:
    (tmp_path / "opsloop.yaml").write_text(
        "project: p\n"
        "problem: {type: classification, target: y, metric: roc_auc}\n"
        "data: {source: d.csv}\n"
    )
    project = open_project(tmp_path)
    try:
        # The first call imports the ML stack; the refusals are timed after it.
        with pytest.raises(ConfigError, match="unknown lifecycle parameter"):
            lifecycle_params(project, {"nope": "1"})
        flat = laughs().replace("\n", ", ")
        refused(
            lambda: lifecycle_params(project, {"trials": "{" + flat + "}"}),
            ConfigError,
            "lifecycle parameter 'trials'",
            "aliases expand",
        )
        refused(
            lambda: lifecycle_params(project, {"trials": "[" * 100_000}),
            ConfigError,
            "lifecycle parameter 'trials'",
        )
        refused(
            lambda: lifecycle_params(project, {"trials": "1" * 100_000}),
            ConfigError,
            "lifecycle parameter 'trials'",
            "too large",
        )
    finally:
        project.close()


@pytest.mark.parametrize("text", [DEEP, DEEP_BLOCK], ids=["flow", "block"])
def test_deep_nesting_is_refused(tmp_path: Path, loader: float, text: str) -> None:
    (tmp_path / "opsloop.yaml").write_text(text)
    refused(lambda: load_spec(tmp_path), SpecError, "opsloop.yaml:")


def test_nesting_through_an_alias_counts(loader: float) -> None:
    half = MAX_DEPTH // 2 + 10
    text = "a: &a " + "[" * half + "]" * half + "\nb: " + "[" * half + "*a" + "]" * half + "\n"
    refused(lambda: load_yaml(text, "f.yaml"), SpecError, "f.yaml:2", "nested deeper")


def test_python_tags_are_refused(tmp_path: Path, loader: float) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "opsloop.yaml").write_text(PYTHON_TAG.format(marker=marker))
    refused(
        lambda: load_spec(tmp_path),
        SpecError,
        "opsloop.yaml:2",
        "'!!python/object/apply:os.system' is not allowed",
    )
    for tag in ("!!python/name:os.system", "!!python/object/new:dict", "!custom"):
        refused(lambda t=tag: parse_spec(f"project: {t} x\n", "p.yaml"), SpecError, "p.yaml:1")
    assert not marker.exists()


def test_a_50_mb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "opsloop.yaml"
    with big.open("wb") as fh:
        fh.write(b"project: x\ndescription: ")
        fh.truncate(50 * 1024 * 1024)
    refused(lambda: load_spec(tmp_path), SpecError, "opsloop.yaml", "too large")
    text = "a: " + "x" * (50 * 1024 * 1024)
    refused(lambda: parse_document(text, "deploy/big.yaml"), SpecError, "deploy/big.yaml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &a [1, *a]\n", "refers to a node that contains it"),
        ("? [a, b]\n: c\n", "mapping key must be a plain value"),
        ("k: &k {x: 1}\n*k : 2\n", "mapping key must be a plain value"),
        ("a: " + "9" * 5000 + "\n", "invalid value"),
        ("a: *missing\n", "undefined alias"),
        ("a: 1\nb: \x00\n", "invalid YAML"),
    ],
)
def test_other_hostile_shapes_are_one_line_errors(loader: float, text: str, words: str) -> None:
    refused(lambda: load_yaml(text, "f.yaml"), SpecError, "f.yaml", words)


def test_small_anchors_still_load_with_lines(loader: float) -> None:
    text = (
        "defaults: &d {replicas: 2, port: 8601}\n"
        "a:\n"
        "  <<: *d\n"
        "  port: 8602\n"
        "b: *d\n"
        "list: &l [1, 2, 3]\n"
        "again: *l\n"
    )
    data, lines = load_yaml_with_lines(text, "f.yaml")
    assert data["a"] == {"replicas": 2, "port": 8602}
    assert data["b"] == {"replicas": 2, "port": 8601} and data["again"] == [1, 2, 3]
    assert lines[("a", "port")] == 4 and lines[("list",)] == 6 and lines[("again",)] == 7
    # Right at the limit an expansion still loads; one value more does not.
    within = "x: &x [" + ", ".join(["1"] * 99) + "]\ny: [" + ", ".join(["*x"] * 100) + "]\n"
    assert len(load_yaml(within, "f.yaml")["y"]) == 100
    over = within.replace("y: [", "y: [*x, ")
    refused(lambda: load_yaml(over, "f.yaml"), SpecError, "f.yaml:2", "aliases expand")


def test_a_deployment_with_anchors_loads_and_errors_name_the_line(loader: float) -> None:
    text = (
        "apiVersion: opsloop/v1\n"
        "kind: Deployment\n"
        "metadata: {name: churn-prod}\n"
        "spec:\n"
        "  model: churn\n"
        "  version: 3\n"
        "  port: 8601\n"
        "  resources:\n"
        "    requests: &r {cpu: 500m, memory: 1Gi}\n"
        "    limits: *r\n"
    )
    doc = parse_document(text, "deploy/churn.yaml")
    assert doc.spec.resources.limits == doc.spec.resources.requests
    assert doc.spec.resources.limits.memory == "1Gi"
    with pytest.raises(SpecError) as info:
        parse_document(text.replace("8601", "80"), "deploy/churn.yaml")
    assert (info.value.line, info.value.field) == (7, "spec.port")
    with pytest.raises(SpecError) as info:
        parse_document(text.replace("1Gi", "lots"), "deploy/churn.yaml")
    # The value is written once, where the anchor is; the first use of it is named.
    assert info.value.line == 9 and "memory" in str(info.value)


def test_a_stream_of_documents_shares_one_alias_budget(loader: float) -> None:
    stream = "a: &x [1, 2]\nb: *x\n---\nc: &x 3\nd: *x\n"
    assert load_yaml_all(stream, "k.yaml") == [{"a": [1, 2], "b": [1, 2]}, {"c": 3, "d": 3}]
    # 7,380 values each: one loads, two (many small bombs in one file) do not.
    small = laughs(levels=4)
    assert len(load_yaml_all(small, "k.yaml")) == 1
    refused(lambda: load_yaml_all(small + "---\n" + small, "k.yaml"), SpecError, "k.yaml:")
