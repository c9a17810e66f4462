"""Shared fixtures for the AIOps tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SLICE = Path(__file__).parent / "data" / "nab_slice"


@pytest.fixture
def nab_slice() -> Path:
    """The small NAB slice shipped with the tests."""
    return SLICE


@pytest.fixture
def nab_full() -> Path:
    """The full NAB subset named by OPSLOOP_NAB_DIR (skips when it is not set)."""
    value = os.environ.get("OPSLOOP_NAB_DIR")
    if not value:
        pytest.skip("OPSLOOP_NAB_DIR is not set; point it at the NAB subset folder to run this")
    path = Path(value)
    if not (path / "data").is_dir():
        pytest.skip(f"OPSLOOP_NAB_DIR={value} is not an NAB folder (no data/ inside)")
    return path
