"""The flat public namespace: every name in ``opsloop.__all__`` resolves, and nothing else."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import opsloop


@pytest.mark.parametrize("name", opsloop.__all__)
def test_every_export_resolves(name: str) -> None:
    assert getattr(opsloop, name) is not None


def test_exports_match_the_lazy_table() -> None:
    table = set(opsloop._EXPORTS) | {"pipeline"}
    assert set(opsloop.__all__) == table
    assert sorted(opsloop.__all__) == opsloop.__all__


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
