"""The allow-list: every model the project produces passes it untouched; rules, names, uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from opsloop.errors import RegistryError, SpecError, UntrustedTypeError
from opsloop.ml.candidates import get_candidate
from opsloop.ml.features import build_preprocessor, infer_feature_types
from opsloop.registry import load_model_dir, save_model
from opsloop.registry.flavors import SklearnFlavor
from opsloop.registry.trust import TRUSTED, TypeRef, check_extra_types, check_types, is_denied
from opsloop.spec.loader import parse_spec


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, n).astype("int64"),
            "c": rng.choice(["x", "y", "z"], n),
            "d": rng.choice(["p", "q"], n),
        }
    )
    df.loc[::17, "a"] = np.nan
    return df


@pytest.mark.parametrize(
    "candidate",
    ["logistic_regression", "random_forest", "hist_gradient_boosting", "lightgbm", "xgboost"],
)
@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_every_model_the_lifecycle_produces_is_trusted_by_default(
    tmp_path: Path, mixed: pd.DataFrame, candidate: str, problem: str
) -> None:
    rng = np.random.default_rng(5)
    if problem == "binary":
        y = (mixed["a"].fillna(0) + mixed["b"] > 2).astype(int).to_numpy()
    elif problem == "multiclass":
        y = rng.integers(0, 3, len(mixed))
    else:
        y = mixed["b"].to_numpy() * 2.0 + rng.normal(size=len(mixed))
    ptype = "regression" if problem == "regression" else "classification"
    spec = infer_feature_types(mixed.assign(t=y), target="t")
    model = Pipeline(
        [("pre", build_preprocessor(spec)), ("model", get_candidate(candidate).build(ptype))]
    ).fit(mixed, y)

    meta = save_model(model, tmp_path / "pkg", input_example=mixed, project_dir=tmp_path).metadata
    assert meta.extra_trusted_types == []
    loaded, _ = load_model_dir(tmp_path / "pkg")
    method = meta.signature.output.method
    np.testing.assert_allclose(getattr(loaded, method)(mixed), getattr(model, method)(mixed))


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "posix.system",
        "nt.system",
        "subprocess.Popen",
        "subprocess.run",
        "builtins.eval",
        "builtins.exec",
        "builtins.open",
        "builtins.compile",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "importlib.import_module",
        "shutil.rmtree",
        "socket.socket",
        "pickle.loads",
        "_pickle.loads",
        "marshal.loads",
        "runpy.run_path",
        "sys.exit",
        "ctypes.CDLL",
        "pty.spawn",
        "code.interact",
        "multiprocessing.Process",
        "io.open",
        "_io.FileIO",
        "pathlib.Path",
        "numpy.load",
        "numpy.fromfile",
        "numpy.save",
        "numpy.savez_compressed",
        "numpy.lib.npyio.load",
        "numpy.lib._npyio_impl.loadtxt",
        "numpy.memmap",
        "pandas.read_csv",
        "pandas.read_pickle",
        "pandas.core.frame.DataFrame.to_csv",
        "operator.attrgetter",
        "operator.methodcaller",
        "functools.partial",
        "types.FunctionType",
        "joblib.load",
        "__main__.Model",
        "sklearn.base.BaseEstimator.__reduce__",
    ],
)
def test_dangerous_names_are_denied_and_cannot_be_trusted(name: str) -> None:
    assert is_denied(name)
    with pytest.raises(UntrustedTypeError, match="can never be trusted"):
        check_extra_types([name], source="test")
    with pytest.raises(UntrustedTypeError, match="can never be trusted"):
        check_types([TypeRef(name)], where="model.skops", extra=[name])


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.tree._tree.Tree",
        "numpy.float64",
        "numpy.dtype",
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "mypkg.features.Clipper",
        "numpy.loader_of_nothing",
    ],
)
def test_ordinary_names_are_not_denied(name: str) -> None:
    assert not is_denied(name)


def test_trusted_entries_and_rules_are_not_denied() -> None:
    assert not [n for n in TRUSTED if is_denied(n)]


def test_extra_types_must_be_dotted_names() -> None:
    for bad in ["Clipper", "mypkg.", "my pkg.X", "a.b\n", 3]:
        with pytest.raises(RegistryError, match="is not a dotted type name"):
            check_extra_types([bad], source="opsloop.yaml: security.trusted_types")
    assert check_extra_types(["b.B", "a.A", "b.B"], source="x") == ["a.A", "b.B"]


def test_the_real_module_of_a_project_name_is_checked() -> None:
    # Each name looks like project code, but is an alias of (or built on) something denied:
    # trusting it by name does not help.
    for name in ["run", "evaluate", "reader", "Spawner", "wrapped"]:
        full = f"tests.registry.trust_aliases.{name}"
        assert not is_denied(full)
        with pytest.raises(UntrustedTypeError, match="can never be trusted") as err:
            check_types([TypeRef(full)], where="model.skops", extra=[full])
        assert full in err.value.message
    harmless = "tests.registry.trust_aliases.double"
    assert check_types([TypeRef(harmless)], where="m", extra=[harmless]) == [harmless]


def test_a_function_is_trusted_only_by_name(tmp_path: Path) -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    flavor = SklearnFlavor()
    refs = {
        r.name: r for r in flavor.references(flavor.dump(FunctionTransformer(np.squeeze).fit(X)))
    }
    assert refs["numpy.squeeze"].uses == {"callable"}
    assert not refs["numpy.squeeze"].vouched
    with pytest.raises(UntrustedTypeError, match=r"not trusted: numpy\.squeeze"):
        check_types(refs.values(), where="m")
    assert check_types(refs.values(), where="m", extra=["numpy.squeeze"]) == ["numpy.squeeze"]


def test_a_method_is_trusted_only_by_name() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    scaler = StandardScaler().fit(X)
    model = FunctionTransformer(scaler.transform).fit(X)
    flavor = SklearnFlavor()
    refs = flavor.references(flavor.dump(model))
    method = "sklearn.preprocessing._data.StandardScaler.transform"
    with pytest.raises(UntrustedTypeError, match=method.replace(".", r"\.")):
        check_types(refs, where="m")
    assert check_types(refs, where="m", extra=[method]) == [method]


def test_a_type_trusted_as_an_instance_is_not_trusted_as_a_callable() -> None:
    # A LightGBM booster rebuilt from its state is fine; the class handed to a model to call
    # with any arguments (it reads a model file from a path) is not.
    import lightgbm  # noqa: PLC0415

    X = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    flavor = SklearnFlavor()
    refs = flavor.references(flavor.dump(FunctionTransformer(lightgbm.Booster).fit(X)))
    booster = [r for r in refs if r.name == "lightgbm.basic.Booster"]
    assert booster and booster[0].uses == {"callable"}
    with pytest.raises(UntrustedTypeError, match=r"not trusted: lightgbm\.basic\.Booster"):
        check_types(refs, where="m")


def test_a_scikit_learn_estimator_class_is_trusted_by_rule_in_any_use() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    flavor = SklearnFlavor()
    refs = flavor.references(flavor.dump(FunctionTransformer(LogisticRegression).fit(X)))
    assert "sklearn.linear_model._logistic.LogisticRegression" in {r.name for r in refs}
    assert check_types(refs, where="m") == []


def test_opsloop_yaml_security_section_is_validated() -> None:
    spec = parse_spec("project: p\nsecurity:\n  trusted_types: [mypkg.features.Clipper]\n")
    assert spec.security.trusted_types == ["mypkg.features.Clipper"]
    assert parse_spec("project: p\n").security.trusted_types == []
    with pytest.raises(SpecError, match="not a dotted type name") as err:
        parse_spec("project: p\nsecurity:\n  trusted_types:\n    - ok.Name\n    - Clipper\n")
    assert (err.value.line, err.value.field) == (5, "security.trusted_types.1")
    with pytest.raises(SpecError, match="unknown key"):
        parse_spec("project: p\nsecurity:\n  trusted_typo: [a.B]\n")
