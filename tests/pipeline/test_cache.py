"""Cache keys: what invalidates a step and what does not."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from opsloop.pipeline import run_pipeline
from opsloop.pipeline.cache import cache_key, normalize_source

from . import steps_fixture as sf

MODULE = """
from opsloop.pipeline import pipeline, step


@step
def produce(n: int) -> int:
    {doc}
    return n * {factor}  # {comment}


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def flow(n: int = 2):
    consume(produce(n))
"""


def load_version(tmp_path: Path, name: str, factor: int, doc: str = "", comment: str = ""):
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE.format(factor=factor, doc=doc, comment=comment))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def versions(tmp_path):
    loaded = []

    def load(factor: int, **kw):
        module = load_version(tmp_path, f"cache_case_{len(loaded)}", factor, **kw)
        loaded.append(module.__name__)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


def statuses(result):
    return {n: s.status for n, s in result.steps.items()}


def run(pipe, params=None, **kw):
    return run_pipeline(pipe, params or {}, progress=False, **kw)


def test_normalized_source_ignores_comments_docstrings_decorators_and_layout():
    a = '''
    @step(retries=1)
    def f(x):
        """Doc."""
        return x + 1  # note
    '''
    b = """
    @step(retries=3)
    def f(x):
        return (x +
                1)
    """
    c = """
    @step
    def f(x):
        return x + 2
    """
    assert normalize_source(textwrap.dedent(a)) == normalize_source(b)
    assert normalize_source(a) != normalize_source(c)


def test_cache_key_depends_on_every_part():
    base = dict(
        source="s",
        params={"a": 1},
        inputs={"x": "sha256:1"},
        outputs=("output",),
        materializers=["json@1"],
    )
    key = cache_key(**base)
    assert key.startswith("sha256:") and len(key) == 71
    assert cache_key(**{**base, "params": {"a": 1}}) == key
    for change in (
        {"source": "t"},
        {"params": {"a": 2}},
        {"inputs": {"x": "sha256:2"}},
        {"outputs": ("other",)},
        {"materializers": ["json@2"]},
    ):
        assert cache_key(**{**base, **change}) != key, change


def test_unchanged_rerun_is_fully_cached(store, artifacts, tmp_path):
    marker = tmp_path / "runs"
    params = {"n": 3, "marker": str(marker)}
    first = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    second = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    assert statuses(first) == {"parity": "succeeded", "describe": "succeeded"}
    assert statuses(second) == {"parity": "cached", "describe": "cached"}
    assert marker.read_text() == "x"  # no worker ran the second time
    for name in ("parity", "describe"):
        cached, original = second.steps[name].info, first.steps[name].info
        assert cached.cached_from == original.id
        assert cached.outputs == original.outputs
        assert cached.cache_key == original.cache_key
        assert cached.attempts == 0
    assert second.cached_steps == ["parity", "describe"]
    assert [e.kind for e in store.list_events(object_id=second.run_id)].count("step.cached") == 2


def test_param_change_misses_but_an_unchanged_input_hits(store, artifacts, tmp_path):
    marker = tmp_path / "runs"
    run(sf.parity_pipeline, {"n": 3, "marker": str(marker)}, store=store, artifacts=artifacts)
    # A new n re-runs parity, but 5 % 2 == 3 % 2: describe's input digest is unchanged.
    again = run(
        sf.parity_pipeline, {"n": 5, "marker": str(marker)}, store=store, artifacts=artifacts
    )
    assert statuses(again) == {"parity": "succeeded", "describe": "cached"}
    # An input that changes (4 % 2 == 0) misses the cache downstream.
    other = run(
        sf.parity_pipeline, {"n": 4, "marker": str(marker)}, store=store, artifacts=artifacts
    )
    assert statuses(other) == {"parity": "succeeded", "describe": "succeeded"}
    assert marker.read_text() == "xx"


def test_source_change_misses_and_cosmetic_change_hits(store, artifacts, versions):
    v1 = versions(2)
    assert statuses(run(v1.flow, store=store, artifacts=artifacts)) == {
        "produce": "succeeded",
        "consume": "succeeded",
    }
    cosmetic = versions(2, doc='"""Now documented."""', comment="a comment")
    assert statuses(run(cosmetic.flow, store=store, artifacts=artifacts)) == {
        "produce": "cached",
        "consume": "cached",
    }
    changed = versions(3)
    result = run(changed.flow, store=store, artifacts=artifacts)
    assert statuses(result) == {"produce": "succeeded", "consume": "succeeded"}
    assert result.steps["produce"].info.outputs != {}
    from opsloop.pipeline import load_output

    assert load_output(result, "consume") == 7


def test_no_cache_forces_a_run_and_refreshes_the_cache(store, artifacts, tmp_path):
    marker = tmp_path / "runs"
    params = {"n": 1, "marker": str(marker)}
    run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    forced = run(sf.parity_pipeline, params, store=store, artifacts=artifacts, no_cache=True)
    assert statuses(forced) == {"parity": "succeeded", "describe": "succeeded"}
    assert store.get_run(forced.run_id).tags["opsloop.no_cache"] == "true"
    assert marker.read_text() == "xx"
    latest = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    assert latest.steps["describe"].info.cached_from == forced.steps["describe"].step_run_id


def test_step_with_cache_disabled_always_runs(store, artifacts, tmp_path):
    from opsloop.pipeline import pipeline, step

    @step(cache=False)
    def volatile(marker: str) -> int:
        with open(marker, "a") as f:
            f.write("x")
        return 1

    @pipeline
    def volatile_flow(marker: str):
        volatile(marker)

    marker = tmp_path / "runs"
    for _ in range(2):
        result = run(volatile_flow, {"marker": str(marker)}, store=store, artifacts=artifacts)
        assert statuses(result) == {"volatile": "succeeded"}
        assert result.steps["volatile"].info.cache_key is None
    assert marker.read_text() == "xx"


def test_missing_output_artifact_means_a_rerun(store, artifacts, tmp_path):
    marker = tmp_path / "runs"
    params = {"n": 1, "marker": str(marker)}
    first = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    digest = first.output_digest("describe")
    artifacts.local_path(digest).unlink()
    again = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    assert statuses(again) == {"parity": "cached", "describe": "succeeded"}
