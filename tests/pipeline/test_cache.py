"""Cache keys: what invalidates a step and what does not."""

from __future__ import annotations

import importlib.util
import linecache
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import opsloop
from opsloop.pipeline import cache, load_output, pipeline, run_pipeline, step
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
    assert [e.kind for e in store.events.list(object_id=second.run_id)].count("step.cached") == 2


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

    assert load_output(result, "consume") == 7


def test_no_cache_forces_a_run_and_refreshes_the_cache(store, artifacts, tmp_path):
    marker = tmp_path / "runs"
    params = {"n": 1, "marker": str(marker)}
    run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    forced = run(sf.parity_pipeline, params, store=store, artifacts=artifacts, no_cache=True)
    assert statuses(forced) == {"parity": "succeeded", "describe": "succeeded"}
    assert store.runs.get(forced.run_id).tags["opsloop.no_cache"] == "true"
    assert marker.read_text() == "xx"
    latest = run(sf.parity_pipeline, params, store=store, artifacts=artifacts)
    assert latest.steps["describe"].info.cached_from == forced.steps["describe"].step_run_id


def test_step_with_cache_disabled_always_runs(store, artifacts, tmp_path):
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


# -- code the step calls ----------------------------------------------------------------------

HELPERS = '''\
"""Helpers of the cache-key tests, rewritten between imports."""

import functools

THRESHOLD = {threshold}


def clean(x):
    {doc}
    return scale(x) + {offset}  # {comment}


def scale(x):
    return x * {scale}


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return {odd_base} if n == 0 else is_even(n - 1)


def traced(func):
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)

    return wrapper


@traced
@functools.lru_cache(maxsize=None)
def decorated(x):
    return x - {decorated}


@functools.cache
def memo(x):
    return x + {memo}


class Model:
    """A model."""

    def predict(self, x):
        {method_doc}
        return x * {factor}
'''

STEPS = """\
from opsloop.pipeline import pipeline, step

import {helpers} as helpers
from {helpers} import THRESHOLD, Model, decorated, is_even, memo, scale


@step
def cleaned(x: float) -> float:
    return helpers.clean(x)


@step
def above(x: float) -> bool:
    return x > THRESHOLD


@step
def even(n: int) -> bool:
    return is_even(n)


@step
def predicted(x: float) -> float:
    return Model().predict(x)


@step
def scaled_all(n: int) -> list:
    return [scale(v) for v in range(n)]


@step
def undecorated(x: int) -> int:
    return decorated(x)


@step
def memoized(x: int) -> int:
    return memo(x)


@pipeline
def flow(x: float = 1.0):
    cleaned(x)
"""

DEFAULTS = dict(
    threshold=0.5,
    doc="",
    offset=1,
    comment="",
    scale=2,
    odd_base=False,
    decorated=1,
    memo=1,
    method_doc="",
    factor=3,
)
STEP_NAMES = (
    "cleaned",
    "above",
    "even",
    "predicted",
    "scaled_all",
    "undecorated",
    "memoized",
)


@pytest.fixture
def project(tmp_path, monkeypatch, request):
    """Write a helper module and a step module that imports it; import both afresh.

    ``project(**changes)`` rewrites the helper module from ``HELPERS`` with ``changes`` over
    ``DEFAULTS``, drops both modules from ``sys.modules`` and imports them again, as a new
    process would; it returns the step module.
    """
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    # A rewrite within the same second could otherwise load the old bytecode.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    suffix = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    helpers, steps = f"cache_helpers_{suffix}", f"cache_steps_{suffix}"

    def load(**changes):
        for name in (helpers, steps):
            sys.modules.pop(name, None)
        (root / f"{helpers}.py").write_text(HELPERS.format(**{**DEFAULTS, **changes}))
        (root / f"{steps}.py").write_text(STEPS.format(helpers=helpers))
        importlib.invalidate_caches()
        return importlib.import_module(steps)

    yield load
    for name in (helpers, steps):
        sys.modules.pop(name, None)


def digests(module) -> dict[str, str]:
    return {name: getattr(module, name).source_digest for name in STEP_NAMES}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_helper_changes_miss_and_cosmetic_helper_edits_hit(project):
    base = digests(project())
    assert digests(project()) == base  # a fresh import of the same code
    cosmetic = project(doc='"""Clean ``x``."""', comment="shifted", method_doc='"""Predict."""')
    assert digests(cosmetic) == base
    # helpers.clean: a module attribute the step names
    assert changed(base, digests(project(offset=5))) == {"cleaned"}
    # scale: called by clean (transitively) and by a comprehension of scaled_all
    assert changed(base, digests(project(scale=3))) == {"cleaned", "scaled_all"}


def test_constant_change_misses_only_the_steps_that_read_it(project):
    base = digests(project())
    assert changed(base, digests(project(threshold=0.6))) == {"above"}
    assert changed(base, digests(project(threshold="'0.5'"))) == {"above"}


def test_class_method_change_misses(project):
    base = digests(project())
    assert changed(base, digests(project(factor=4))) == {"predicted"}


@pytest.mark.timeout(60)
def test_mutual_recursion_is_followed_and_terminates(project):
    base = digests(project())
    assert project().even(4) is True
    # is_odd is reached only through is_even, which it calls back
    assert changed(base, digests(project(odd_base=True))) == {"even"}


def test_decorated_helper_is_followed_through_wrapped(project):
    base = digests(project())
    module = project(decorated=2)
    assert module.undecorated(5) == 3
    assert changed(base, digests(module)) == {"undecorated"}
    # a library decorator only: the helper is reached through __wrapped__ alone
    module = project(memo=2)
    assert module.memoized(5) == 7
    assert changed(base, digests(module)) == {"memoized"}


def test_reloaded_helper_module_changes_the_digest_of_an_existing_step(project):
    module = project()
    step_object = module.cleaned
    before = step_object.source_digest
    helpers = sys.modules[module.helpers.__name__]
    path = Path(helpers.__file__)
    path.write_text(path.read_text().replace("+ 1  #", "+ 7  #"))
    importlib.reload(helpers)
    assert step_object(1.0) == 9.0
    assert step_object.source_digest != before


def test_helper_edit_reruns_the_step_and_cosmetic_edit_is_cached(store, artifacts, project):
    first = run(project().flow, store=store, artifacts=artifacts)
    assert statuses(first) == {"cleaned": "succeeded"}
    cosmetic = run(project(doc='"""Doc."""', comment="c").flow, store=store, artifacts=artifacts)
    assert statuses(cosmetic) == {"cleaned": "cached"}
    edited = run(project(offset=5).flow, store=store, artifacts=artifacts)
    assert statuses(edited) == {"cleaned": "succeeded"}
    assert load_output(edited, "cleaned") == 7.0


def test_opsloop_version_is_part_of_the_digest(project, monkeypatch):
    module = project()
    before = digests(module)
    monkeypatch.setattr(opsloop, "__version__", "0.0.0+other")
    assert changed(before, digests(module)) == set(STEP_NAMES)


LIBRARY = """\
def double(x):
    return x * {factor}
"""

LIBRARY_USER = """\
from opsloop.pipeline import step

from fake_cache_library import double


@step
def uses_library(x: int) -> int:
    return double(x)
"""


@pytest.mark.parametrize(("folder", "followed"), [("site-packages", False), ("src", True)])
def test_only_project_code_is_followed(tmp_path, monkeypatch, folder, followed):
    library_dir, project_dir = tmp_path / folder, tmp_path / "project"
    library_dir.mkdir()
    project_dir.mkdir()
    monkeypatch.syspath_prepend(str(library_dir))
    monkeypatch.syspath_prepend(str(project_dir))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    (project_dir / "fake_cache_user.py").write_text(LIBRARY_USER)
    found = []
    try:
        for factor in (2, 3):
            for name in ("fake_cache_library", "fake_cache_user"):
                sys.modules.pop(name, None)
            (library_dir / "fake_cache_library.py").write_text(LIBRARY.format(factor=factor))
            importlib.invalidate_caches()
            user = importlib.import_module("fake_cache_user")
            assert user.uses_library(5) == 5 * factor
            found.append(user.uses_library.source_digest)
    finally:
        for name in ("fake_cache_library", "fake_cache_user"):
            sys.modules.pop(name, None)
    assert (found[0] != found[1]) is followed


def test_a_global_the_step_assigns_is_state_not_code():
    from . import helpers_fixture as hf  # noqa: PLC0415

    before = hf.counted.source_digest
    assert hf.counted() == hf.CALLS
    assert hf.counted.source_digest == before


def test_numpy_is_not_followed_and_the_digest_is_quick():
    from . import helpers_fixture as hf  # noqa: PLC0415

    # Start cold: no source read yet, no digest of any code remembered.
    linecache.clearcache()
    cache.clear_digest_caches()
    started = time.perf_counter()
    first = hf.with_numpy.source_digest
    cold = time.perf_counter() - started
    numpy_dir = str(Path(np.__file__).parent)
    assert not [f for f in linecache.cache if f.startswith(numpy_dir)]
    started = time.perf_counter()
    for _ in range(100):
        assert hf.with_numpy.source_digest == first
    warm = (time.perf_counter() - started) / 100
    assert cold < 0.25, cold
    assert warm < 0.002, warm


def test_digest_is_the_same_in_another_process():
    from . import helpers_fixture as hf  # noqa: PLC0415

    ours = {name: getattr(hf, name).source_digest for name in ("with_numpy", "with_constants")}
    script = (
        "from tests.pipeline import helpers_fixture as hf;"
        "print(hf.with_numpy.source_digest, hf.with_constants.source_digest)"
    )
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert out.stdout.split() == [ours["with_numpy"], ours["with_constants"]]
