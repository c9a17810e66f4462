"""AlertReceiver: deliveries from concurrent senders, those that wait correlated together."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from opsloop.aiops.alerts import AlertIn, list_alerts
from opsloop.aiops.incidents import IngestResult, list_incidents
from opsloop.aiops.lineage import LineageGraph
from opsloop.aiops.receiver import AlertReceiver
from opsloop.store import Store, open_store
from opsloop.store.acting import acting
from tests.aiops.test_correlation import alert, estate


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


class _HeldGraph:
    """The lineage graph, handed out only once ``release`` is set for the first transaction:
    deliveries submitted meanwhile wait."""

    def __init__(self) -> None:
        self.graph = estate()
        self.asked = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> LineageGraph:
        self.calls += 1
        if self.calls == 1:
            self.asked.set()
            assert self.release.wait(30)
        return self.graph


def _delivery(k: int) -> list[AlertIn]:
    """Two alerts of sender ``k``: its deployment's error rate, and its latency later."""
    dep = ("churn-prod", "churn-eu", "fraud-prod")[k % 3]
    return [
        alert("error_rate_high", k, deployment=dep, sender=str(k)),
        alert("latency_p99_high", k + 0.5, deployment=dep, sender=str(k)),
    ]


def _submit_all(receiver: AlertReceiver, deliveries: list[list[AlertIn]]) -> list[IngestResult]:
    results: list[IngestResult | None] = [None] * len(deliveries)

    def send(k: int) -> None:
        results[k] = receiver.submit(deliveries[k])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(deliveries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a sender was never answered"
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_a_lone_delivery_is_ingested_at_once_in_its_own_transaction(store: Store) -> None:
    receiver = AlertReceiver(store, estate)
    result = receiver.submit(_delivery(0))
    assert [r.name for r in result.alerts] == ["error_rate_high", "latency_p99_high"]
    assert len(result.opened) == 1
    assert {r.incident_id for r in result.alerts} == set(result.opened)
    assert (receiver.transactions, receiver.deliveries) == (1, 1)


def test_deliveries_that_wait_are_correlated_together_and_each_gets_its_own_answer(
    store: Store,
) -> None:
    graph = _HeldGraph()
    receiver = AlertReceiver(store, graph)
    first = threading.Thread(target=receiver.submit, args=(_delivery(0),))
    first.start()
    # The first delivery holds the lead while ten more arrive.
    assert graph.asked.wait(30)
    waiting = [_delivery(k) for k in range(1, 11)]
    results: list[IngestResult] = []
    sending = threading.Thread(target=lambda: results.extend(_submit_all(receiver, waiting)))
    sending.start()
    while receiver.waiting < 10:
        sending.join(0.01)
    graph.release.set()
    first.join(30)
    sending.join(60)
    # One transaction for the first, one for the ten that waited.
    assert (receiver.transactions, receiver.deliveries) == (2, 11)
    assert len(results) == 10
    for k, result in enumerate(results, start=1):
        assert [r.labels["sender"] for r in result.alerts] == [str(k), str(k)]
        assert [r.name for r in result.alerts] == ["error_rate_high", "latency_p99_high"]
        held = {r.incident_id for r in result.alerts}
        # Only incidents that hold its alerts are in its answer.
        assert set(result.opened) | set(result.updated) <= held
        assert held <= set(result.opened) | set(result.updated)
    assert len(list_alerts(store, limit=1000)) == 22
    stored = {a.id: a for a in list_alerts(store, limit=1000)}
    for result in results:
        for r in result.alerts:
            assert stored[r.id].incident_id == r.incident_id is not None
    assert sum(i.alert_count for i in list_incidents(store)) == 22


def test_deliveries_of_other_actors_are_not_mixed_in_one_transaction(store: Store) -> None:
    graph = _HeldGraph()
    receiver = AlertReceiver(store, graph)

    def send(who: str, k: int) -> None:
        with acting(who, source="test"):
            receiver.submit(_delivery(k))

    threads = [threading.Thread(target=send, args=("first", 0))]
    threads[0].start()
    assert graph.asked.wait(30)
    for k, who in enumerate(["am-1", "am-2", "am-1", "am-2"], start=1):
        threads.append(threading.Thread(target=send, args=(who, k)))
        threads[-1].start()
    while receiver.waiting < 4:
        threads[-1].join(0.01)
    graph.release.set()
    for t in threads:
        t.join(60)
    assert (receiver.transactions, receiver.deliveries) == (3, 5)
    events = store.events.list(object_type="alert")
    by_sender = {}
    for a in list_alerts(store, limit=100):
        by_sender[a.labels["sender"]] = {e.actor for e in events if e.object_id == str(a.id)}
    assert by_sender == {
        "0": {"first"},
        "1": {"am-1"},
        "2": {"am-2"},
        "3": {"am-1"},
        "4": {"am-2"},
    }


def test_a_delivery_that_cannot_be_written_fails_alone(store: Store) -> None:
    graph = _HeldGraph()
    receiver = AlertReceiver(store, graph)
    first = threading.Thread(target=receiver.submit, args=(_delivery(0),))
    first.start()
    assert graph.asked.wait(30)
    # A set is no JSON: the row cannot be written, however often it is tried.
    bad = [AlertIn(name="odd", labels={"deployment": "churn-prod"}, details={"x": {1, 2}})]
    deliveries = [_delivery(1), bad, _delivery(2)]
    outcomes: list[object] = [None] * 3

    def send(k: int) -> None:
        try:
            outcomes[k] = receiver.submit(deliveries[k])
        except Exception as exc:
            outcomes[k] = exc

    threads = [threading.Thread(target=send, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    while receiver.waiting < 3:
        threads[-1].join(0.01)
    graph.release.set()
    for t in [first, *threads]:
        t.join(60)
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert isinstance(outcomes[1], Exception)
    # The shared transaction rolled back whole; the good ones were written alone.
    names = sorted(a.labels.get("sender", "-") for a in list_alerts(store, limit=100))
    assert names == ["0", "0", "1", "1", "2", "2"]
    assert receiver.transactions == 1 + 1 + 3


def test_many_senders_many_rounds_every_alert_once_and_no_sender_left_waiting(
    store: Store,
) -> None:
    receiver = AlertReceiver(store, estate)
    deliveries = [_delivery(k) for k in range(60)]
    results = _submit_all(receiver, deliveries)
    ids = [r.id for result in results for r in result.alerts]
    assert len(ids) == len(set(ids)) == 120
    assert receiver.deliveries == 60
    assert receiver.transactions <= 60
    assert len(list_alerts(store, limit=1000)) == 120
