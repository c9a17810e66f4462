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


def test_latest_metrics_are_the_last_points_stored(store: Store) -> None:
    run = store.runs.create("latest")
    # Steps out of order, several keys: the latest value is the last point stored.
    store.runs.log_metric_points(
        run.id, [("b", 1.0, 5, 0), ("a", 2.0, 9, 0), ("b", 3.0, 2, 0), ("c", 4.0, 0, 0)]
    )
    store.runs.log_metric_points(run.id, [("a", 5.0, 1, 0)])
    assert store.runs.get(run.id).metrics == {"a": 5.0, "b": 3.0, "c": 4.0}
    assert store.runs.get(store.runs.create("empty").id).metrics == {}


def test_envelope_of_an_ended_run_is_kept_until_a_point_is_added(store: Store) -> None:
    run = store.runs.create("long")
    store.runs.log_metric_points(run.id, [("loss", float(s), s, 0) for s in range(400)])
    store.runs.finish(run.id, "finished")
    first = store.runs.metric_envelope(run.id, "loss", 20)
    assert first is not None and max(v for _, v in first) == 399.0
    assert store.runs.metric_envelope(run.id, "loss", 20) == first
    store.runs.log_metric_points(run.id, [("loss", 1000.0, 400, 0)])
    again = store.runs.metric_envelope(run.id, "loss", 20)
    assert again is not None and max(v for _, v in again) == 1000.0


def test_runs_narrowed_by_text_fields(store: Store) -> None:
    for name in ("sweep-9", "sweep-99", "Sweep-990", "other_99", "other%99"):
        store.runs.create(name)
    names = {r.name for r in store.runs.list(containing=[("name", "p-99")])}
    assert {"sweep-99", "Sweep-990"} <= names and "sweep-9" not in names
    assert {r.name for r in store.runs.list(containing=[("name", "%99")])} == {"other%99"}
    assert {r.name for r in store.runs.list(equal=[("name", "sweep-9")])} == {"sweep-9"}
