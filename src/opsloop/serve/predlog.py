"""Asynchronous, bounded, batched writing of prediction and feedback records.

Requests put records on a bounded queue and go on; one writer task takes whatever has queued
(up to ``batch_size``) and hands it to the sink in a worker thread. When the queue is full the
request waits (backpressure) instead of dropping records. A failed write is retried with
backoff; on shutdown the queue is drained before the server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Generic, Protocol, TypeVar

from opsloop.serve.metrics import ServerMetrics

__all__ = ["RecordLog"]

logger = logging.getLogger("opsloop.serve")

R = TypeVar("R")


class _Sink(Protocol[R]):
    def write_batch(self, records: list[R]) -> None: ...


_STOP = object()
_ENCODE_SLICE = 64


class RecordLog(Generic[R]):
    """A bounded queue of records written to a sink in batches by one background task.

    Args:
        sink: Receives ``write_batch(records)`` calls, one at a time, in a worker thread.
        name: Label for metrics and messages (``predictions``, ``feedback``).
        max_queue: Records that may wait; a full queue makes ``put`` wait.
        batch_size: Most records per ``write_batch`` call.
        flush_interval: After the first record of a batch arrives, how long to let more
            gather before writing (one thread hop per record would cost more than the write).
        metrics: Where queue depth, written records and failures are counted.
    """

    def __init__(
        self,
        sink: _Sink[R],
        *,
        name: str,
        max_queue: int = 10_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.1,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.metrics = metrics
        self.written = 0
        self.failed_batches = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._give_up_at: float | None = None
        if metrics is not None:
            self._depth = metrics.child(metrics.log_queue, name)
            self._written_metric = metrics.child(metrics.log_written, name)
            self._fail_metric = metrics.child(metrics.log_failures, name)

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._queue = asyncio.Queue(self.max_queue)
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._writer(), name=f"{self.name}-log")

    @property
    def depth(self) -> int:
        """Records waiting to be written."""
        return 0 if self._queue is None else self._queue.qsize()

    async def put(self, record: R) -> None:
        """Queue one record; waits while the queue is full."""
        queue = self._queue
        if queue is None:
            raise RuntimeError(f"{self.name} log is not started")
        if self._closing:
            raise RuntimeError(f"{self.name} log is closed")
        if queue.full():
            await queue.put(record)
        else:
            queue.put_nowait(record)

    async def put_many(self, records: list[R]) -> None:
        """Queue several records in order; waits while the queue is full."""
        for record in records:
            await self.put(record)

    async def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop. Records still unwritten after ``timeout`` (the
        sink kept failing) are reported in the log as lost, never dropped silently."""
        if self._queue is None or self._task is None or self._closing:
            return
        self._closing = True
        self._wake.set()
        self._give_up_at = time.monotonic() + timeout
        await self._queue.put(_STOP)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout + 5.0)
        except TimeoutError:
            self._task.cancel()
            logger.error(
                "%s log: %d records could not be written before shutdown", self.name, self.depth
            )
        close = getattr(self.sink, "close", None)
        if callable(close):
            await asyncio.to_thread(close)

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        stop = False
        while True:
            item = await queue.get()
            if item is not _STOP and not self._closing and queue.qsize() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            batch: list[R] = []
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                await self._write(batch)
            if self.metrics is not None:
                self._depth.set(queue.qsize())
            if stop and queue.empty():
                return

    async def _encode(self, batch: list[R]) -> bytes | None:
        """The batch as bytes, for sinks that split encoding from writing; else None.

        Encoding is CPU work under the GIL: done in a thread it would stall the event loop for
        whole switch intervals, so it runs here in small slices between requests and only the
        blocking write goes to a thread.
        """
        encode = getattr(self.sink, "encode", None)
        if not callable(encode) or not callable(getattr(self.sink, "write_bytes", None)):
            return None
        parts: list[bytes] = []
        for start in range(0, len(batch), _ENCODE_SLICE):
            parts.append(encode(batch[start : start + _ENCODE_SLICE]))
            await asyncio.sleep(0)
        return b"".join(parts)

    async def _write(self, batch: list[R]) -> None:
        delay = 0.05
        data = await self._encode(batch)
        while True:
            try:
                if data is None:
                    await asyncio.to_thread(self.sink.write_batch, batch)
                else:
                    await asyncio.to_thread(self.sink.write_bytes, data)  # type: ignore[attr-defined]
            except Exception as exc:
                self.failed_batches += 1
                if self.metrics is not None:
                    self._fail_metric.inc()
                if self._give_up_at is not None and time.monotonic() > self._give_up_at:
                    logger.error(
                        "%s log: giving up on %d records at shutdown; last error: %s",
                        self.name,
                        len(batch),
                        exc,
                    )
                    return
                logger.warning(
                    "%s log: writing %d records to %r failed (%s); retrying in %.2fs",
                    self.name,
                    len(batch),
                    self.sink,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.written += len(batch)
            if self.metrics is not None:
                self._written_metric.inc(len(batch))
            return
