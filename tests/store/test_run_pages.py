"""What the dashboard's lists read, on every backend: keyset pages of runs (with their params,
tags and latest metrics loaded per page) and a long metric history's envelope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsloop.store import Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


def test_keyset_pages_cover_every_run_once(store: Store) -> None:
    made = []
    for i in range(7):
        run = store.runs.create(f"r{i}", params={"i": i}, tags={"t": "x"})
        store.runs.log_metric_points(run.id, [("acc", 0.1 * i, 0, 0), ("acc", 0.2 * i, 1, 0)])
        made.append(run.id)
    for descending in (True, False):
        seen: list[str] = []
        after = None
        while True:
            page = store.runs.list_page(descending=descending, after=after, limit=3)
            seen += [r.id for r in page]
            if len(page) < 3:
                break
            after = (page[-1].started_at, page[-1].id)
        assert sorted(seen) == sorted(made) and len(seen) == 7
        full = {r.id: r for r in store.runs.list(limit=100)}
        for r in store.runs.list_page(descending=descending, limit=7):
            assert r == full[r.id]  # the same params, tags and latest metrics as one by one
            assert r.metrics["acc"] == pytest.approx(0.2 * int(r.params["i"]))


def test_metric_envelope_keeps_extremes(store: Store) -> None:
    run = store.runs.create("long")
    points = [("loss", float(s % 10), s, 0) for s in range(2000)]
    points[1234] = ("loss", 99.0, 1234, 0)
    store.runs.log_metric_points(run.id, points)
    envelope = store.runs.metric_envelope(run.id, "loss", 50)
    assert envelope is not None and len(envelope) <= 100
    assert max(v for _, v in envelope) == 99.0 and min(v for _, v in envelope) == 0.0
    assert [s for s, _ in envelope] == sorted(s for s, _ in envelope)
    assert store.runs.metric_envelope(run.id, "loss", 5000) is None  # short: read it all
