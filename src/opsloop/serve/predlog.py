"""Asynchronous, bounded, batched writing of prediction and feedback records.

Requests put records on a bounded queue and go on; one writer task takes whatever has queued
(up to ``batch_size``) and hands it to the sink in a worker thread. When the queue is full the
request waits (backpressure) instead of dropping records.

A failed write is handled by what the error says about the records:

* A *data error* will fail again on every retry: ``TypeError``, ``ValueError`` (and so
  ``UnicodeError``), ``OverflowError`` or a database's ``DataError``/``IntegrityError`` (PEP 249
  names), raised directly or as the cause of a driver's own exception, and any error of the
  sink's ``encode``. The batch is split in halves at once and each half written in turn,
  splitting again what fails, so that every good record is written and only the records that
  fail on their own are set aside.
* Any other error (``OSError``, a database that is down) is taken to be the sink's: the write is
  retried with exponential backoff (``retry_delay`` doubling up to ``max_retry_delay``). After
  ``max_attempts`` failures in a row the batch is split the same way, in case one record is at
  fault. A record failing alone for such a reason is set aside only when another part of the
  batch was written since the last failure, i.e. when the sink is shown to work. While nothing
  gets through, the sink is taken to be down: the parts are put back together, topped up with
  records queued meanwhile (up to ``batch_size``, so that a lone bad record gets good company to
  be told apart from), and retried, so an outage costs no records.

Records set aside go to the dead-letter file when the log has one: JSON Lines, one object per
record with ``time``, ``log``, ``error`` (``type`` and ``message``) and ``record`` (its
``to_dict()``, else its fields, with the ``repr()`` of any value JSON cannot hold). Without a
file they are reported in the log at ERROR level with their number. Either way they are counted
in ``dead_lettered``.

On shutdown the queue is drained; what the sink still refuses once ``close``'s timeout has
passed is set aside the same way rather than lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import orjson

from opsloop.errors import is_data_error as _is_data_error
from opsloop.serve.sinks import JsonlSink, ParquetSink

if TYPE_CHECKING:
    from opsloop.serve.metrics import ServerMetrics

__all__ = ["RecordLog"]

logger = logging.getLogger("opsloop.serve")

R = TypeVar("R")


class _Sink(Protocol[R]):
    def write_batch(self, records: list[R]) -> None: ...


_STOP = object()
_ENCODE_SLICE = 64
# Parts in a row that may fail for a sink-side reason, nothing written between, before the sink
# is taken to be down; doubled each time that happens (to look deeper for several bad records).
_PATIENCE = 3
_MAX_PATIENCE = 64
_MAX_DEPTH = 64
_DEAD_LETTER_LOCK = threading.Lock()


def _halves(piece: list[R]) -> tuple[list[R], list[R]]:
    middle = len(piece) // 2
    return piece[:middle], piece[middle:]


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
        dead_letter: JSON Lines file for records the sink will not take; None reports them in
            the log only. :meth:`dead_letter_for` gives the usual place for file sinks.
        max_attempts: Failed writes of one batch (or part) in a row, for a reason that is not
            a data error, before it is split to look for a bad record.
        retry_delay: First wait before retrying a failed write; doubles while writes fail.
        max_retry_delay: Longest wait between retries.
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
        dead_letter: Path | None = None,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        max_retry_delay: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.sink = sink
        self.name = name
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.written = 0
        self.failed_batches = 0
        self.dead_lettered = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop_seen = False
        self._give_up_at: float | None = None
        self._delay = retry_delay
        if metrics is not None:
            self._depth = metrics.child(metrics.log_queue, name)
            self._written_metric = metrics.child(metrics.log_written, name)
            self._fail_metric = metrics.child(metrics.log_failures, name)

    @staticmethod
    def dead_letter_for(sink: object) -> Path | None:
        """The usual dead-letter file of ``sink``: beside a JSON Lines file
        (``preds.jsonl`` gives ``preds.dead-letter.jsonl``), inside a Parquet directory as
        ``_dead-letter.jsonl`` (Parquet readers skip names starting with ``_``); None for other
        sinks, unless they name one in a ``dead_letter`` attribute (the store sinks do)."""
        named = getattr(sink, "dead_letter", None)
        if isinstance(named, Path):
            return named
        if isinstance(sink, JsonlSink):
            return sink.path.with_name(f"{sink.path.stem}.dead-letter.jsonl")
        if isinstance(sink, ParquetSink):
            return sink.directory / "_dead-letter.jsonl"
        return None

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
        """Write everything queued, then stop. Records the sink still refuses after ``timeout``
        are set aside like records that cannot be written (see the module description); if the
        writer is stuck even longer, what is left is reported in the log as lost."""
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
        while True:
            item = await queue.get()
            if item is not _STOP and not self._closing and queue.qsize() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            batch: list[R] = []
            while True:
                if item is _STOP:
                    self._stop_seen = True
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                await self._write(batch)
            if self.metrics is not None:
                self._depth.set(queue.qsize())
            if self._stop_seen and queue.empty():
                return

    def _take_queued(self, limit: int) -> list[R]:
        """Up to ``limit`` records from the queue, without waiting."""
        taken: list[R] = []
        queue = self._queue
        while queue is not None and len(taken) < limit and not queue.empty():
            item = queue.get_nowait()
            if item is _STOP:
                self._stop_seen = True
                break
            taken.append(item)
        return taken

    def _past_deadline(self) -> bool:
        return self._give_up_at is not None and time.monotonic() > self._give_up_at

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

    def _count_failure(self) -> None:
        self.failed_batches += 1
        if self.metrics is not None:
            self._fail_metric.inc()

    async def _attempt(self, piece: list[R]) -> tuple[Exception, bool] | None:
        """Write ``piece``, retrying failures that are not data errors up to ``max_attempts``
        times; None once written, else the last error and whether it is a data error."""
        try:
            data = await self._encode(piece)
        except Exception as exc:
            self._count_failure()
            return exc, True
        attempts = 0
        while True:
            try:
                if data is None:
                    await asyncio.to_thread(self.sink.write_batch, piece)
                else:
                    await asyncio.to_thread(self.sink.write_bytes, data)  # type: ignore[attr-defined]
            except Exception as exc:
                self._count_failure()
                if _is_data_error(exc):
                    return exc, True
                if self._past_deadline():
                    return exc, False
                # Every failure of the sink is followed by a pause, whatever is tried next.
                logger.warning(
                    "%s log: writing %d records to %r failed (%s); trying again in %.2fs",
                    self.name,
                    len(piece),
                    self.sink,
                    exc,
                    self._delay,
                )
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.max_retry_delay)
                attempts += 1
                if attempts >= self.max_attempts:
                    return exc, False
                continue
            self._delay = self.retry_delay
            self.written += len(piece)
            if self.metrics is not None:
                self._written_metric.inc(len(piece))
            return None

    async def _write(self, batch: list[R]) -> None:
        """Write ``batch``: whole if the sink takes it, else in parts (see the module
        description), setting aside the records that cannot be written."""
        todo: deque[list[R]] = deque([batch])
        aside: list[tuple[R, Exception]] = []
        # Records that failed alone for a sink-side reason while nothing got through.
        held: list[R] = []
        # Whether a part was written since the last sink-side failure: the sink works.
        got_through = False
        # Parts in a row that failed for a sink-side reason with nothing written between.
        streak = 0
        patience = _PATIENCE
        splitting = False
        while todo or held:
            if not todo or streak >= patience:
                # Nothing gets through: the sink is down rather than a record bad. Retry all
                # as one batch, with records queued since, and look deeper next time.
                merged = held + [record for part in todo for record in part]
                merged += self._take_queued(self.batch_size - len(merged))
                logger.warning(
                    "%s log: %r accepts none of the records; retrying %d of them together",
                    self.name,
                    self.sink,
                    len(merged),
                )
                todo, held = deque([merged]), []
                streak, patience = 0, min(patience * 2, _MAX_PATIENCE)
            piece = todo.popleft()
            failure = await self._attempt(piece)
            if failure is None:
                got_through, streak, patience = True, 0, _PATIENCE
                todo.extend([record] for record in held)
                held.clear()
                continue
            error, data_error = failure
            if not data_error and self._past_deadline():
                # Shutting down and the sink still refuses: keep the records, stop waiting.
                rest = piece + held + [record for part in todo for record in part]
                aside.extend((record, error) for record in rest)
                break
            proven = got_through
            if not data_error:
                streak += 1
                got_through = False
            if len(piece) > 1:
                if not splitting:
                    splitting = True
                    logger.warning(
                        "%s log: %d records could not be written together (%s: %s); writing "
                        "them in parts to find the records at fault",
                        self.name,
                        len(piece),
                        type(error).__name__,
                        error,
                    )
                todo.extend(_halves(piece))
            elif data_error or proven:
                aside.append((piece[0], error))
            else:
                held.extend(piece)
        if aside:
            await self._set_aside(aside)

    async def _set_aside(self, aside: list[tuple[R, Exception]]) -> None:
        """Put records the sink would not take, each with its error, in the dead-letter file
        (or report them when there is none)."""
        self.dead_lettered += len(aside)
        first = aside[0][1]
        reason = f"{type(first).__name__}: {first}"
        if self.dead_letter is None:
            logger.error(
                "%s log: %d records could not be written and are dropped (first error: %s); "
                "give the log a dead-letter file to keep them",
                self.name,
                len(aside),
                reason,
            )
            return
        try:
            await asyncio.to_thread(_append_dead_letters, self.dead_letter, self.name, aside)
        except Exception as exc:
            logger.error(
                "%s log: %d records could not be written (first error: %s) nor saved to %s "
                "(%s); they are lost",
                self.name,
                len(aside),
                reason,
                self.dead_letter,
                exc,
            )
            return
        logger.error(
            "%s log: %d records could not be written (first error: %s); saved to %s",
            self.name,
            len(aside),
            reason,
            self.dead_letter,
        )


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object (repr failed)>"


def _text(value: str) -> str:
    """``value``, or its ``repr()`` when it is no valid Unicode (lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _repr(value)
    return value


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can hold it; what JSON cannot hold becomes its ``repr()``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else _repr(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _repr(value)
    if depth >= _MAX_DEPTH:
        return _repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {
            _text(key) if isinstance(key, str) else _repr(key): _plain(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item, depth + 1) for item in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        with contextlib.suppress(Exception):
            return _plain(tolist(), depth + 1)
    return _repr(value)


def _record_value(record: Any) -> Any:
    """``record`` as JSON can hold it, as far as it goes."""
    to_dict = getattr(record, "to_dict", None)
    if callable(to_dict):
        with contextlib.suppress(Exception):
            return _plain(to_dict())
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        with contextlib.suppress(Exception):
            fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
            return _plain(fields)
    try:
        return _plain(record)
    except Exception:
        return _repr(record)


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _append_dead_letters(path: Path, log: str, aside: list[tuple[Any, Exception]]) -> None:
    """Append one JSON line per record, with its error, to ``path``; forced to disk."""
    now = dt.datetime.now(dt.UTC).isoformat()
    lines: list[bytes] = []
    for record, error in aside:
        try:
            message = str(error)
        except Exception:
            message = _repr(error)
        head = {
            "time": now,
            "log": log,
            "error": {"type": _error_type(error), "message": _text(message)},
        }
        try:
            line = orjson.dumps({**head, "record": _record_value(record)})
        except Exception:
            line = orjson.dumps({**head, "record": _text(_repr(record))})
        lines.append(line + b"\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _DEAD_LETTER_LOCK, path.open("ab") as fh:
        fh.write(b"".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
