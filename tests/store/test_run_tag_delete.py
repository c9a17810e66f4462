"""Deleting a run tag, on every store backend."""

from __future__ import annotations

import pytest

from opsloop.errors import NotFoundError
from opsloop.store import open_store


def test_delete_tag(store_url: str) -> None:
    store = open_store(store_url, actor="tester")
    try:
        run = store.runs.create("r", tags={"keep": "1", "drop": "2"})
        store.runs.delete_tag(run.id, "drop")
        assert store.runs.get(run.id).tags == {"keep": "1"}
        event = store.events.list(kind="run.tag_deleted")[0]
        assert (event.object_id, event.details, event.actor) == (run.id, {"key": "drop"}, "tester")
        with pytest.raises(NotFoundError, match="no tag 'drop'"):
            store.runs.delete_tag(run.id, "drop")
        with pytest.raises(NotFoundError, match="does not exist"):
            store.runs.delete_tag("f" * 32, "keep")
        assert store.runs.get(run.id).tags == {"keep": "1"}
    finally:
        store.close()
