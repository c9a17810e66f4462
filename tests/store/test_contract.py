"""The store contract (opsloop.testing.stores) on every backend (SQLite and PostgreSQL): one
test per backend and check, each on a new, empty store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.testing import Check, check_store, yield_store_checks


@pytest.mark.parametrize("check", list(yield_store_checks()), ids=lambda c: c.name)
def test_store_contract(store_url: str, check: Check[str]) -> None:
    check(store_url)


def test_check_store_runs_every_check_on_a_new_store_each(tmp_path: Path) -> None:
    urls = (f"sqlite:///{tmp_path / f'store{i}.db'}" for i in range(100))
    check_store(lambda: next(urls))
    assert next(urls).endswith(f"store{len(list(yield_store_checks()))}.db")


def test_a_shared_store_fails_checks_that_count_and_names_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with pytest.raises(AssertionError, match=r"of 19 store checks failed") as info:
        check_store(lambda: url)
    assert "- check_every_state_change_is_an_event: " in str(info.value)
