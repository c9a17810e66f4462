"""The generic registry (opsloop.plugins) and plugins from a distribution's entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from opsloop.aiops.detectors import DETECTORS, MADDetector, get_detector
from opsloop.artifacts import open_artifact_store
from opsloop.artifacts.registry import ARTIFACT_STORES
from opsloop.errors import AIOpsError, ConfigError, ModelLoadError, PluginError, RegistryError
from opsloop.gitops.runtime import RUNTIMES
from opsloop.pipeline import available_executors, get_executor, register_executor
from opsloop.pipeline.executors import EXECUTORS
from opsloop.pipeline.executors.inline import InlineExecutor
from opsloop.plugins import ENTRY_POINT_GROUPS, Registry
from opsloop.registry.flavors import FLAVORS, flavor_for, get_flavor
from opsloop.store import backend_for
from opsloop.store.base import STORE_BACKENDS
from opsloop.testing import check_artifact_store, check_detector, check_executor

REGISTRIES = [DETECTORS, EXECUTORS, RUNTIMES, STORE_BACKENDS, ARTIFACT_STORES, FLAVORS]

MODULE = "opsloop_demo_plugins"

PLUGIN_CODE = '''
from opsloop.aiops.detectors import MADDetector
from opsloop.artifacts.fsspec_store import FsspecArtifactStore
from opsloop.pipeline.executors.inline import InlineExecutor


class DemoDetector(MADDetector):
    """A MAD detector under another name."""


class DemoExecutor(InlineExecutor):
    name = "demo"


def open_demo(url, **storage_options):
    return FsspecArtifactStore("memory://" + url.split("://", 1)[1], **storage_options)
'''

ENTRY_POINTS = f"""
[opsloop.detectors]
demo = {MODULE}:DemoDetector
broken = opsloop_demo_missing:Nothing
notadetector = {MODULE}:DemoExecutor

[opsloop.executors]
demo = {MODULE}:DemoExecutor
broken = {MODULE}:NoSuchExecutor

[opsloop.artifact_stores]
demo = {MODULE}:open_demo

[opsloop.flavors]
broken = opsloop_demo_missing:Flavor
"""


def install(site: Path, name: str, entry_points: str, code: str | None = None) -> None:
    """A distribution as pip leaves it: a module and a ``*.dist-info`` folder."""
    module = name.replace("-", "_")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if code is not None:
        (site / f"{module}.py").write_text(code)


@pytest.fixture
def fresh_registries() -> Iterator[None]:
    """Every registry forgets the entry points it found, before and after the test."""
    for registry in REGISTRIES:
        registry.refresh()
    yield
    for registry in REGISTRIES:
        registry.refresh()
    sys.modules.pop(MODULE, None)


@pytest.fixture
def demo_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registries: None) -> Path:
    site = tmp_path / "site"
    install(site, "opsloop-demo-plugins", ENTRY_POINTS, PLUGIN_CODE)
    monkeypatch.syspath_prepend(str(site))
    return site


# -- the registry itself --------------------------------------------------------------------


def test_register_get_names_and_replace() -> None:
    reg: Registry[int] = Registry("widget", "opsloop.test_widgets")
    reg.register("one", 1)
    reg.register("two", 2)
    assert reg.get("one") == 1 and reg["two"] == 2
    assert reg.names() == ["one", "two"] and list(reg) == ["one", "two"] and len(reg) == 2
    assert "one" in reg and "three" not in reg and 1 not in reg
    with pytest.raises(ConfigError, match="widget 'one' is already registered"):
        reg.register("one", 10)
    reg.register("one", 10, replace=True)
    assert reg.get("one") == 10
    reg.unregister("one")
    assert reg.names() == ["two"]
    with pytest.raises(ConfigError, match="a widget name must be a non-empty string"):
        reg.register("", 3)


def test_unknown_name_names_the_kind_the_known_names_and_the_closest() -> None:
    reg: Registry[int] = Registry("widget", "opsloop.test_widgets", error=AIOpsError)
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(
        AIOpsError,
        match=r"^unknown widget 'alpah'; known widgets: alpha, beta \(did you mean 'alpha'\?\)$",
    ):
        reg.get("alpah")
    with pytest.raises(AIOpsError, match=r"^unknown widget 'zzz'; known widgets: alpha, beta$"):
        reg["zzz"]


def test_an_import_reference_is_imported_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "opsloop_lazy_widget.py").write_text("WIDGET = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opsloop_lazy_widget", raising=False)
    reg: Registry[int] = Registry("widget", "opsloop.test_widgets")
    reg.register("lazy", "opsloop_lazy_widget:WIDGET")
    reg.register("gone", "opsloop_no_such_module:WIDGET")
    assert "lazy" in reg.names()
    assert "opsloop_lazy_widget" not in sys.modules
    assert reg.get("lazy") == 42
    assert "opsloop_lazy_widget" in sys.modules
    with pytest.raises(
        PluginError,
        match=r"widget 'gone' \(opsloop_no_such_module:WIDGET\) cannot be imported: "
        r"ModuleNotFoundError",
    ):
        reg.get("gone")
    assert reg.get("lazy") == 42
    monkeypatch.delitem(sys.modules, "opsloop_lazy_widget")


def test_the_check_turns_and_refuses_what_a_name_resolves_to() -> None:
    def positive(name: str, obj: object) -> int:
        if not isinstance(obj, int) or obj <= 0:
            raise TypeError(f"{obj!r} is not a positive int")
        return obj * 10

    reg: Registry[int] = Registry("widget", "opsloop.test_widgets", check=positive)
    reg.register("good", 4)
    reg.register("bad", -1)
    assert reg.get("good") == 40
    with pytest.raises(PluginError, match=r"widget 'bad' is not a usable widget: -1 is not"):
        reg.get("bad")


def test_every_registry_has_its_group() -> None:
    assert {r.group for r in REGISTRIES} < set(ENTRY_POINT_GROUPS)
    assert "opsloop.remediation_actions" in ENTRY_POINT_GROUPS
    assert len(ENTRY_POINT_GROUPS) == 7


def test_the_wrappers_are_thin(fresh_registries: None) -> None:
    assert isinstance(get_executor("inline"), InlineExecutor)
    register_executor("inline-again", InlineExecutor)
    try:
        assert "inline-again" in available_executors()
        assert isinstance(get_executor("inline-again"), InlineExecutor)
        with pytest.raises(ConfigError, match="executor 'inline-again' is already registered"):
            register_executor("inline-again", InlineExecutor)
        register_executor("not-one", lambda **options: object(), replace=True)
        with pytest.raises(ConfigError, match="its factory returned a object, not an Executor"):
            get_executor("not-one")
        register_executor("a-class", dict)
        with pytest.raises(PluginError, match=r"builtins\.dict is not an Executor subclass"):
            get_executor("a-class")
    finally:
        for name in ("inline-again", "not-one", "a-class"):
            EXECUTORS.unregister(name)
    assert backend_for("postgres://u@h/db").name == "postgresql"
    with pytest.raises(ConfigError, match="unsupported store URL"):
        backend_for("mysql://u@h/db")
    assert get_flavor("sklearn").name == "sklearn"
    with pytest.raises(ModelLoadError, match="unknown model flavor 'onnx'") as info:
        get_flavor("onnx")
    assert info.value.hint is not None and "upgrade opsloop" in info.value.hint


# -- entry points ---------------------------------------------------------------------------


def test_a_distribution_adds_a_detector_and_an_executor(demo_dist: Path) -> None:
    assert {"demo", "broken", "notadetector"} <= set(DETECTORS.names())
    detector = get_detector("demo", window=50)
    assert type(detector).__name__ == "DemoDetector" and detector.window == 50
    assert isinstance(detector, MADDetector)
    assert "demo" in available_executors()
    executor = get_executor("demo")
    assert type(executor).__name__ == "DemoExecutor"
    # The plugin's own test suite runs the same contract as the built-ins.
    check_detector(type(detector), slow=False)
    check_executor(lambda: get_executor("demo"))


def test_a_distribution_adds_an_artifact_store_scheme(demo_dist: Path) -> None:
    store = open_artifact_store("demo://opsloop-demo-plugin-store")
    assert store.get_bytes(store.put_bytes(b"plugged")) == b"plugged"
    check_artifact_store(store)


def test_a_broken_entry_point_names_its_distribution_and_breaks_nothing_else(
    demo_dist: Path,
) -> None:
    with pytest.raises(PluginError) as info:
        get_detector("broken")
    message = str(info.value)
    assert message.startswith(
        "detector 'broken' from entry point 'broken = opsloop_demo_missing:Nothing' of "
        "distribution 'opsloop-demo-plugins 1.0' (group opsloop.detectors) cannot be imported: "
        "ModuleNotFoundError"
    ), message
    assert info.value.hint == "reinstall that distribution, or uninstall it"
    with pytest.raises(PluginError, match=r"executor 'broken' from entry point .* AttributeError"):
        get_executor("broken")
    with pytest.raises(PluginError, match=r"'notadetector = .*' .* is not a usable detector"):
        get_detector("notadetector")
    # Every other name still works, and listing leaves the broken ones out.
    assert isinstance(get_detector("mad"), MADDetector)
    assert type(get_detector("demo")).__name__ == "DemoDetector"
    listed = [name for name, _ in DETECTORS.items()]
    assert listed[:4] == ["mad", "ewma", "seasonal", "ensemble"]
    assert "demo" in listed and "broken" not in listed and "notadetector" not in listed
    assert get_executor("inline") is not None
    # A flavor that cannot be imported is named when no other flavor fits.
    assert flavor_for(LogisticRegression()).name == "sklearn"
    with pytest.raises(RegistryError, match=r"flavors that cannot be imported: broken"):
        flavor_for(object())


def test_a_distribution_installed_later_is_found_after_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registries: None
) -> None:
    with pytest.raises(AIOpsError, match="unknown detector 'late'"):
        get_detector("late")
    site = tmp_path / "late-site"
    install(site, "opsloop-late", f"[opsloop.detectors]\nlate = {MODULE}:DemoDetector\n")
    (site / f"{MODULE}.py").write_text(PLUGIN_CODE)
    monkeypatch.syspath_prepend(str(site))
    DETECTORS.refresh()
    assert type(get_detector("late")).__name__ == "DemoDetector"
