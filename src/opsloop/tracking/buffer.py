"""A bounded in-memory buffer of metric points, written in one transaction per batch."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from opsloop.errors import NotFoundError, StoreError, is_data_error
from opsloop.tracking.checks import storable_problem

if TYPE_CHECKING:
    from opsloop.store import MetricRow, Store

logger = logging.getLogger("opsloop.tracking")

# Refused points named in the warning; the rest are counted.
_REPORT_FIRST = 3
_MAX_RETRY_DELAY_S = 30.0


class MetricBuffer:
    """Collects metric points of one run and writes them in batches.

    When the buffer is full its batch is handed to a writer thread and the caller goes on
    filling a new one; the database driver releases the GIL while it writes, so logging and
    writing overlap. At most one batch is in flight: a caller that fills the next batch before
    the previous one is written waits for it. :meth:`flush` (run end, error, process exit)
    writes whatever is left, and :meth:`tick`, called by a timer, hands over points that have
    waited about ``flush_s``, so that a killed process loses at most that much. Adding a point
    takes no lock: points go on a deque, which appends and pops atomically.

    A write the store refuses is handled by what the error says:

    * A data error (see :func:`opsloop.errors.is_data_error`) will fail on every retry: the
      points no backend can hold are set aside, the rest is written, split in halves as long
      as a part is still refused. The points set aside are dropped and reported once, as a
      warning naming the first few (key, step and value) and their count.
    * Any other error (the store is down) keeps the points and retries them with the next
      batch, or from :meth:`tick` with a growing delay. Up to ``max_pending`` points are kept;
      beyond that, the caller that fills a batch writes in its own thread and waits for the
      store, for up to ``outage_timeout_s``, then gets a ``StoreError`` (points still kept).
    * ``NotFoundError`` (the run was deleted) keeps the points and is raised to the caller.

    Args:
        store: Where points go.
        run_id: The run they belong to.
        capacity: Points per batch.
        flush_s: Longest wait of a point before :meth:`tick` hands it to the writer.
        heartbeat: Refresh the run's heartbeat with every batch written.
        max_pending: Points kept while the store fails (default: ten batches).
        outage_timeout_s: How long a caller waits for a failing store past ``max_pending``.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        capacity: int = 10_000,
        *,
        flush_s: float = 1.0,
        heartbeat: bool = False,
        max_pending: int | None = None,
        outage_timeout_s: float = 60.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.capacity = capacity
        self.flush_s = flush_s
        self.heartbeat = heartbeat
        self.max_pending = max_pending if max_pending is not None else 10 * capacity
        self.outage_timeout_s = outage_timeout_s
        self.points: deque[MetricRow] = deque()
        self.append = self.points.append
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self._retry: list[MetricRow] = []
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self._outage: BaseException | None = None
        self._seen: MetricRow | None = None
        self._seen_at = 0.0
        self.written = 0
        self.rejected = 0
        self.last_write = time.monotonic()

    def add(self, key: str, value: float, step: int, timestamp: int) -> None:
        """Buffer one point; hand the batch to the writer when the buffer is full.

        A hot path may inline this: ``append`` the tuple, then call :meth:`hand_off_full`
        once ``len(points)`` reaches ``capacity``.
        """
        self.append((key, value, step, timestamp))
        if len(self.points) >= self.capacity:
            self._submit()

    def hand_off_full(self) -> None:
        """Hand the full buffer to the writer (waiting for the batch in flight, if any)."""
        self._submit()

    # -- hand-off -------------------------------------------------------------------------

    def _take(self) -> list[MetricRow]:
        """Kept points, then everything buffered now (points added meanwhile stay)."""
        batch, self._retry = self._retry, []
        pop = self.points.popleft
        batch.extend([pop() for _ in range(len(self.points))])
        return batch

    def _wait(self) -> None:
        if self._in_flight is not None:
            fut, self._in_flight = self._in_flight, None
            fut.result()

    def _hand_off(self, batch: list[MetricRow]) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="opsloop-metrics")
        try:
            self._in_flight = self._writer.submit(self._write, batch, False)
        except RuntimeError:
            # The interpreter is shutting down and starts no thread: flush() writes them.
            self._retry[:0] = batch

    def _submit(self) -> None:
        with self._lock:
            self._wait()
            if len(self._retry) >= self.max_pending:
                self._write_through_outage()
            batch = self._take()
            if batch:
                self._hand_off(batch)

    def _write_through_outage(self) -> None:
        """Write the kept points in this thread, waiting for the store; StoreError at last."""
        started = time.monotonic()
        delay = 0.1
        while True:
            try:
                self._write(self._take(), True)
                return
            except NotFoundError:
                raise
            except Exception as exc:
                waited = time.monotonic() - started
                if waited >= self.outage_timeout_s:
                    raise StoreError(
                        f"metric points of run {self.run_id} cannot be written: the metadata "
                        f"store has failed for {waited:.0f} s ({exc}); {len(self):,} points "
                        "are held in memory",
                        hint="check the store; the points are written once it answers",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def tick(self, now: float) -> None:
        """Hand over points that have waited about ``flush_s``, or retry kept points.

        Called by a timer thread every ``flush_s / 2`` or more often; never blocks on a write.
        """
        points = self.points
        try:
            head = points[0]
        except IndexError:
            self._seen = None
            if self._retry and now >= self._retry_at:
                self._try_submit()
            return
        if head is not self._seen:
            # The oldest point is new since the last tick: it has waited at most one tick.
            self._seen, self._seen_at = head, now
        elif now - self._seen_at >= self.flush_s / 2 * 0.9 and self._try_submit():
            self._seen = None

    def _try_submit(self) -> bool:
        """Hand over what is buffered unless a write or a hand-off is under way."""
        in_flight = self._in_flight
        if in_flight is not None and not in_flight.done():
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._wait()
            batch = self._take()
            if batch:
                self._hand_off(batch)
            return True
        finally:
            self._lock.release()

    # -- writing --------------------------------------------------------------------------

    def _store_write(self, part: list[MetricRow]) -> None:
        self.store.runs.log_metric_points(self.run_id, part, heartbeat=self.heartbeat)
        self.written += len(part)
        self.last_write = time.monotonic()
        if self._outage is not None:
            logger.warning("run %s: the metadata store answers again", self.run_id)
            self._outage = None
            self._retry_delay = 0.0

    def _write(self, batch: list[MetricRow], raise_outage: bool) -> None:
        try:
            self._store_write(batch)
        except NotFoundError:
            self._retry[:0] = batch
            raise
        except Exception as exc:
            if is_data_error(exc):
                self._isolate(batch, raise_outage)
                return
            self._keep(batch, exc)
            if raise_outage:
                raise
        except BaseException:
            self._retry[:0] = batch
            raise

    def _keep(self, points: list[MetricRow], exc: BaseException) -> None:
        self._retry[:0] = points
        if self._outage is None:
            logger.warning(
                "run %s: the metadata store failed (%s); %d metric points are kept and retried",
                self.run_id,
                exc,
                len(self._retry),
            )
        self._outage = exc
        self._retry_delay = min(max(self._retry_delay * 2, 0.5), _MAX_RETRY_DELAY_S)
        self._retry_at = time.monotonic() + self._retry_delay

    def _isolate(self, batch: list[MetricRow], raise_outage: bool) -> None:
        """Write every point of a refused batch the store takes; report the others once."""
        bad: list[tuple[MetricRow, str]] = []
        good: list[MetricRow] = []
        # What no backend can hold is set aside at once: a batch of many bad points would
        # otherwise cost two writes per point.
        for point in batch:
            problem = storable_problem(point)
            if problem is None:
                good.append(point)
            else:
                bad.append((point, problem))
        parts = [good] if good else []
        try:
            while parts:
                part = parts.pop()
                try:
                    self._store_write(part)
                except NotFoundError:
                    parts.append(part)
                    raise
                except Exception as exc:
                    if not is_data_error(exc):
                        parts.append(part)
                        raise
                    if len(part) == 1:
                        bad.append((part[0], f"{type(exc).__name__}: {exc}"))
                    else:
                        middle = len(part) // 2
                        parts += [part[middle:], part[:middle]]
        except NotFoundError:
            self._retry[:0] = [p for part in reversed(parts) for p in part]
            raise
        except Exception as exc:
            self._keep([p for part in reversed(parts) for p in part], exc)
            if raise_outage:
                raise
        finally:
            self._report(bad)

    def _report(self, bad: list[tuple[MetricRow, str]]) -> None:
        if not bad:
            return
        self.rejected += len(bad)
        named = "; ".join(
            f"key {key!r} step {step!r} value {value!r}: {why.splitlines()[0][:200]}"
            for (key, value, step, _), why in bad[:_REPORT_FIRST]
        )
        more = f" and {len(bad) - _REPORT_FIRST} more" if len(bad) > _REPORT_FIRST else ""
        logger.warning(
            "run %s: the store refused %d metric point(s), dropped: %s%s",
            self.run_id,
            len(bad),
            named,
            more,
        )

    def flush(self) -> None:
        """Write every buffered point, in the calling thread, and return when it is written.

        Synchronous on purpose: at interpreter exit no new work may be handed to a thread.

        Raises:
            NotFoundError: The run does not exist (the points are kept).
            StoreError: The store failed (the points are kept for the next flush).
        """
        with self._lock:
            self._wait()
            batch = self._take()
            if batch:
                self._write(batch, True)

    def close(self) -> None:
        """Flush and stop the writer thread."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def __len__(self) -> int:
        return len(self.points) + len(self._retry)
