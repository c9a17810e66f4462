"""Alerts pushed by many senders at once, correlated in shared transactions (group commit).

Every call of :func:`~opsloop.aiops.incidents.ingest_alerts` reads the recent alerts of the
new alerts' lineage neighbours and correlates the new alerts with them: a cost per call that a
storm pays once per delivery when each webhook is its own transaction. :class:`AlertReceiver`
is what a server puts in front of it: a delivery that arrives while another one is being
ingested waits for it, and all the deliveries that waited meanwhile are then ingested
together, in one transaction. A lone delivery is ingested at once (no timer holds it back);
under load the transactions grow by themselves, and the context is read once for all of them.

Each sender still gets only its own answer: the rows of its alerts, in the order it sent them,
and the incidents they are in. A sender is answered once its alerts are committed, so an
acknowledged alert is never lost. If a shared transaction fails, each delivery of it is tried
again alone, so that one bad delivery fails alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.aiops.incidents import IngestResult, ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.store.acting import acting, current_actor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from opsloop.aiops.alerts import AlertIn
    from opsloop.aiops.lineage import LineageGraph
    from opsloop.store import Store
    from opsloop.store.acting import Actor

__all__ = ["MAX_GROUP_ALERTS", "AlertReceiver"]

MAX_GROUP_ALERTS = 5_000
"""The most alerts one shared transaction takes (a delivery larger than that is still taken
whole, alone): a transaction holds the store's write lock while it runs."""


@dataclass(eq=False)
class _Delivery:
    alerts: Sequence[AlertIn]
    actor: Actor | None
    # Set when the delivery is done, or handed the lead (see AlertReceiver.submit).
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


class AlertReceiver:
    """Ingests deliveries of alerts from concurrent senders, those that arrive together in one
    transaction (see the module docstring).

    Args:
        store: The metadata store.
        graph: The lineage graph to correlate over, asked for once per transaction (default:
            the store's, as it stands then).
        max_alerts: The most alerts one shared transaction takes.
    """

    def __init__(
        self,
        store: Store,
        graph: Callable[[], LineageGraph] | None = None,
        *,
        max_alerts: int = MAX_GROUP_ALERTS,
    ) -> None:
        self.store = store
        self._graph = graph or (lambda: lineage_from_store(store))
        self.max_alerts = max_alerts
        self._lock = threading.Lock()
        self._queue: list[_Delivery] = []
        self._leading = False
        #: How many transactions ran, and how many deliveries they took (for the curious and
        #: for tests).
        self.transactions = 0
        self.deliveries = 0

    @property
    def waiting(self) -> int:
        """How many deliveries wait for a transaction now."""
        with self._lock:
            return len(self._queue)

    def submit(self, alerts: Sequence[AlertIn]) -> IngestResult:
        """Ingest one delivery; returns once its alerts are committed.

        The result holds the stored row of each alert given, in order, and of the incidents
        the transaction opened, updated and resolved those that hold these alerts. Writes are
        recorded for the actor of the calling thread (see :func:`~opsloop.store.acting`);
        only deliveries of the same actor share a transaction.

        Raises:
            OpsloopError: Whatever ingesting the delivery alone raises.
        """
        mine = _Delivery(list(alerts), current_actor())
        with self._lock:
            self._queue.append(mine)
            if not self._leading:
                self._leading = mine.lead = True
        if not mine.lead:
            # Another delivery leads: it ingests this one with the next group, or hands this
            # one the lead once its own is done.
            mine.wake.wait()
        if not mine.done:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _lead(self, mine: _Delivery) -> None:
        """Ingest groups until ``mine`` is done, then hand the lead to the oldest delivery
        still waiting (or give it up)."""
        try:
            while not mine.done:
                self._run(self._take())
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake.set()
                else:
                    self._leading = False

    def _take(self) -> list[_Delivery]:
        """The oldest waiting delivery and those after it of the same actor, up to
        :attr:`max_alerts` alerts (the first whatever its size)."""
        with self._lock:
            first = self._queue[0]
            group = [first]
            size = len(first.alerts)
            for d in self._queue[1:]:
                if d.actor != first.actor or size + len(d.alerts) > self.max_alerts:
                    continue
                group.append(d)
                size += len(d.alerts)
            taken = {id(d) for d in group}
            self._queue = [d for d in self._queue if id(d) not in taken]
        return group

    def _run(self, group: list[_Delivery]) -> None:
        try:
            self._run_group(group)
        except BaseException as exc:
            # Interrupted (the process stopping): no sender waits for ever.
            for d in group:
                if not d.done:
                    self._finish(d, error=exc)
            raise

    def _run_group(self, group: list[_Delivery]) -> None:
        try:
            combined = self._ingest(group[0].actor, [a for d in group for a in d.alerts])
        except Exception as exc:
            if len(group) == 1:
                self._finish(group[0], error=exc)
                return
            # One of them may be what failed: each is tried alone, and fails alone.
            for d in group:
                try:
                    self._finish(d, result=self._ingest(d.actor, d.alerts))
                except Exception as alone:
                    self._finish(d, error=alone)
            return
        at = 0
        for d in group:
            self._finish(d, result=_share(combined, at, len(d.alerts)))
            at += len(d.alerts)

    def _ingest(self, actor: Actor | None, alerts: Sequence[AlertIn]) -> IngestResult:
        self.transactions += 1
        if actor is None:
            return ingest_alerts(self.store, alerts, self._graph())
        with acting(actor.name, source=actor.source):
            return ingest_alerts(self.store, alerts, self._graph())

    def _finish(
        self,
        d: _Delivery,
        *,
        result: IngestResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.deliveries += 1
        d.result, d.error, d.done = result, error, True
        d.wake.set()


def _share(combined: IngestResult, at: int, n: int) -> IngestResult:
    """One delivery's part of a shared transaction's result: its alerts' rows, and the
    incidents that hold them."""
    rows = combined.alerts[at : at + n]
    held = {r.incident_id for r in rows if r.incident_id is not None}
    return IngestResult(
        alerts=rows,
        opened=[i for i in combined.opened if i in held],
        updated=[i for i in combined.updated if i in held],
        resolved=[i for i in combined.resolved if i in held],
    )
