"""The flat public namespace: every name in ``opsloop.__all__`` resolves, and nothing else."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import opsloop
import opsloop.errors as errors
from tests.public_names import check_export


@pytest.mark.parametrize("name", opsloop.__all__)
def test_every_export_resolves(name: str) -> None:
    check_export(opsloop, name)
    module = importlib.import_module(opsloop._EXPORTS[name])
    expected = module if module.__name__ == f"opsloop.{name}" else getattr(module, name)
    assert getattr(opsloop, name) is expected


def test_all_is_the_table_sorted() -> None:
    assert opsloop.__all__ == sorted(opsloop._EXPORTS)


def _type_checking_imports() -> dict[str, str]:
    """What the ``if TYPE_CHECKING:`` block of ``opsloop/__init__.py`` imports, from where."""
    tree = ast.parse(Path(opsloop.__file__).read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    imported: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for alias in node.names:
            assert alias.asname is None, alias.name
            # ``from opsloop import pipeline`` imports the subpackage opsloop.pipeline.
            imported[alias.name] = (
                f"opsloop.{alias.name}" if node.module == "opsloop" else str(node.module)
            )
    return imported


def test_type_checking_imports_match_the_table() -> None:
    assert _type_checking_imports() == opsloop._EXPORTS


def test_every_error_class_is_exported() -> None:
    classes = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.OpsloopError)
    }
    assert "WebhookPayloadError" in classes
    assert {n for n, m in opsloop._EXPORTS.items() if m == "opsloop.errors"} == classes
    for name in classes:
        assert getattr(opsloop, name) is getattr(errors, name)


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        opsloop.nope  # noqa: B018


def test_pipeline_is_the_decorator() -> None:
    @opsloop.pipeline
    def p() -> None:
        pass

    assert type(p).__name__ == "Pipeline"
    assert opsloop.pipeline is importlib.import_module("opsloop.pipeline")


def test_import_is_light() -> None:
    """``import opsloop`` must not pull in the ML stack (the CLI starts on every call)."""
    code = (
        "import sys, opsloop; "
        "print(sorted(m for m in ('pandas', 'sklearn', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
