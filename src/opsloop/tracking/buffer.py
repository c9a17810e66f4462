"""A bounded in-memory buffer of metric points, written in one transaction per batch."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from opsloop.store import Store
from opsloop.store.facade import MetricRow


class MetricBuffer:
    """Collects metric points of one run and writes them in batches.

    When the buffer is full its batch is handed to a writer thread and the caller goes on
    filling a new one; the database driver releases the GIL while it writes, so logging and
    writing overlap. At most one batch is in flight: a caller that fills the next batch before
    the previous one is written waits for it. Memory therefore stays bounded at two batches,
    and :meth:`flush` (run end, error, process exit) writes whatever is left.

    Args:
        store: Where points go.
        run_id: The run they belong to.
        capacity: Points per batch.
    """

    def __init__(self, store: Store, run_id: str, capacity: int = 10_000) -> None:
        self.store = store
        self.run_id = run_id
        self.capacity = capacity
        self._points: list[MetricRow] = []
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self._failed: list[MetricRow] = []
        self.written = 0

    def add(self, key: str, value: float, step: int, timestamp: int) -> None:
        """Buffer one point; hand the batch to the writer when the buffer is full."""
        points = self._points
        points.append((key, value, step, timestamp))
        if len(points) >= self.capacity:
            self._submit()

    def _write(self, batch: list[MetricRow]) -> None:
        try:
            self.store.log_metric_points(self.run_id, batch)
        except BaseException:
            # Keep the points so that the next flush can try again.
            self._failed = batch + self._failed
            raise
        self.written += len(batch)

    def _wait(self) -> None:
        if self._in_flight is not None:
            fut, self._in_flight = self._in_flight, None
            fut.result()

    def _submit(self) -> None:
        with self._lock:
            self._wait()
            batch, self._points = self._failed + self._points, []
            self._failed = []
            if not batch:
                return
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="opsloop-metrics")
            self._in_flight = self._writer.submit(self._write, batch)

    def flush(self) -> None:
        """Write every buffered point, in the calling thread, and return when it is written.

        Synchronous on purpose: at interpreter exit no new work may be handed to a thread.
        """
        with self._lock:
            self._wait()
            batch, self._points = self._failed + self._points, []
            self._failed = []
            if batch:
                self._write(batch)

    def close(self) -> None:
        """Flush and stop the writer thread."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def __len__(self) -> int:
        return len(self._points) + len(self._failed)
