"""The ``executor:`` section of opsloop.yaml."""

from __future__ import annotations

import pytest

from opsloop.errors import SpecError
from opsloop.spec import parse_spec


def test_default_is_local() -> None:
    spec = parse_spec("project: p\n")
    assert spec.executor.name == "local" and spec.executor.options() == {}


def test_shorthand_and_full_form() -> None:
    assert parse_spec("project: p\nexecutor: ray\n").executor.name == "ray"
    spec = parse_spec("project: p\nexecutor:\n  name: ray\n  address: auto\n  max_workers: 4\n")
    assert spec.executor.options() == {"address": "auto"}
    assert spec.executor.max_workers == 4
    spec = parse_spec("project: p\nexecutor:\n  name: ray\n  address: ray://head:10001\n")
    assert spec.executor.address == "ray://head:10001"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("executor:\n  name: local\n  address: auto\n", "address is for the ray executor"),
        ("executor:\n  name: ray\n  address: 'http://x y'\n", "is not a Ray address"),
        ("executor:\n  name: ray\n  max_workers: 0\n", "greater than or equal to 1"),
        ("executor:\n  name: ray\n  nodes: 3\n", "nodes"),
    ],
)
def test_bad_sections_name_the_field(text: str, words: str) -> None:
    with pytest.raises(SpecError, match="executor") as info:
        parse_spec("project: p\n" + text)
    assert words in str(info.value)
