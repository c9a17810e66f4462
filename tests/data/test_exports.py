"""The public namespace of opsloop.data."""

from __future__ import annotations

import opsloop.data
from tests.public_names import check_export


def test_every_export_exists_and_is_listed_once() -> None:
    names = opsloop.data.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        check_export(opsloop.data, name)
