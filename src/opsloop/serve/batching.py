"""Micro-batching: concurrent requests for one model version share one ``predict`` call.

A request's validated columns are queued; the batch is cut when it reaches
``max_batch_size`` rows, when the event loop goes one turn without a new arrival (waiting
longer would only add latency), or at the latest ``max_wait_ms`` after the first request. The
frame is built once per batch. ``predict`` runs on the event loop when it is quick (a thread
hop costs more than it saves) and in a worker thread when it is slow, so the loop keeps reading
requests; ``offload="auto"`` decides from a moving average of recent predict times.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from opsloop.errors import ServingError
from opsloop.serve.codec import Columns, schema_of

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from concurrent.futures import Executor

    from opsloop.serve.base import ColumnSpec, ServableModel

__all__ = ["FrameBuilder", "MicroBatcher", "synthetic_columns"]

OffloadMode = Literal["auto", "always", "never"]

_NUMERIC = {"float", "int", "bool"}


class FrameBuilder:
    """Builds the model's input DataFrame from the columns of one or more requests.

    Args:
        signature: The model's input columns.
    """

    def __init__(self, signature: Sequence[ColumnSpec]) -> None:
        self.schema = schema_of(signature)
        self.specs = list(self.schema)
        self.names = self.schema.names
        self.width = len(self.names)
        # One dtype across numeric columns: build one 2-D block, the cheapest frame pandas has.
        self.block_dtype = self.schema.block_dtype

    def build(self, parts: Sequence[Columns]) -> pd.DataFrame:
        """One frame with the rows of every part, in order."""
        width = self.width
        if self.block_dtype is not None:
            if all(part.flat is not None for part in parts):
                flat = (
                    parts[0].flat
                    if len(parts) == 1
                    else list(chain.from_iterable(part.flat for part in parts))  # type: ignore[misc]
                )
                block = np.array(flat, dtype=self.block_dtype).reshape(-1, width)
            else:
                cols = self._columns(parts)
                block = np.array(cols, dtype=self.block_dtype).T
            return pd.DataFrame(block, columns=self.names, copy=False)
        data: dict[str, Any] = {}
        for spec, values in zip(self.specs, self._columns(parts), strict=True):
            kind = spec.kind
            if kind in _NUMERIC:
                data[spec.name] = np.array(values, dtype=spec.dtype)
            elif kind == "datetime":
                data[spec.name] = pd.to_datetime(values).astype(spec.dtype)
            elif spec.dtype == "object":
                # A Series keeps the object dtype; pandas would infer "str" from a bare array.
                data[spec.name] = pd.Series(values, dtype=object)
            else:
                data[spec.name] = pd.array(values, dtype=spec.dtype)
        return pd.DataFrame(data, copy=False)

    def _columns(self, parts: Sequence[Columns]) -> list[list[Any]]:
        width = self.width
        if len(parts) == 1:
            return parts[0].column_data(width)
        per_part = [part.column_data(width) for part in parts]
        return [list(chain.from_iterable(cols[j] for cols in per_part)) for j in range(width)]


def synthetic_columns(signature: Sequence[ColumnSpec]) -> Columns:
    """One neutral row for a signature (0, 0.0, False, "" or the epoch), used to warm up."""
    values: dict[str, Any] = {
        "float": 0.0,
        "int": 0,
        "bool": False,
        "str": "",
        "datetime": pd.Timestamp(0),
    }
    return Columns([[values[spec.kind]] for spec in signature], 1)


@dataclass(slots=True)
class _Item:
    columns: Columns
    future: asyncio.Future[np.ndarray]


@dataclass(slots=True)
class _Outcome:
    results: list[np.ndarray | BaseException]
    seconds: float


class MicroBatcher:
    """Coalesces concurrent requests for one model version into batched ``predict`` calls.

    Args:
        model: The model version to call.
        max_batch_size: Most rows in one ``predict`` call (one larger request runs alone).
        max_wait_ms: Longest a request waits for others to join its batch.
        enabled: False runs every request on its own (still through the same path).
        offload: Run ``predict`` in ``executor`` always, never, or when it is slow (auto).
        offload_threshold_ms: In auto mode, offload when recent predicts took longer.
        executor: Thread pool for offloaded predicts; None uses the loop's default one.
        on_batch: Called on the event loop after every ``predict`` with (rows, seconds).
    """

    def __init__(
        self,
        model: ServableModel,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        enabled: bool = True,
        offload: OffloadMode = "auto",
        offload_threshold_ms: float = 2.0,
        executor: Executor | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ServingError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ServingError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self.model = model
        self.frames = FrameBuilder(model.signature)
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.enabled = enabled
        self.offload = offload
        self.offload_threshold = offload_threshold_ms / 1000.0
        self.executor = executor
        self.on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._rows = 0
        self._arrivals = 0
        self._seen = 0
        self._deadline = 0.0
        self._timer: asyncio.Handle | None = None
        self._busy = False
        self._avg_seconds: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> int:
        """Requests queued and not yet in a running ``predict``."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """Whether a ``predict`` is running in a worker thread."""
        return self._busy

    async def submit(self, columns: Columns) -> np.ndarray:
        """Queue one request's rows and wait for their share of the batch's output.

        Raises:
            ServingError: The model failed on these rows or answered with the wrong shape.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append(_Item(columns, future))
        self._rows += columns.rows
        self._arrivals += 1
        if not self._busy:
            if not self.enabled or self._rows >= self.max_batch_size:
                self._flush()
            elif self._timer is None:
                self._deadline = loop.time() + self.max_wait
                self._seen = self._arrivals
                self._timer = loop.call_soon(self._tick)
        return await future

    def observe(self, seconds: float) -> None:
        """Feed one predict duration (e.g. the warm-up's) to the auto-offload average."""
        self._avg_seconds = (
            seconds if self._avg_seconds is None else 0.8 * self._avg_seconds + 0.2 * seconds
        )

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued request is answered (used before unloading)."""
        end = time.monotonic() + timeout
        while (self._pending or self._busy) and time.monotonic() < end:
            await asyncio.sleep(0.005)

    # -- internals, all on the event loop thread except _run ---------------------------------

    def _tick(self) -> None:
        self._timer = None
        if self._busy or not self._pending:
            return
        assert self._loop is not None
        if (
            self._arrivals == self._seen
            or self._rows >= self.max_batch_size
            or self._loop.time() >= self._deadline
        ):
            self._flush()
        else:
            self._seen = self._arrivals
            self._timer = self._loop.call_soon(self._tick)

    def _take(self) -> list[_Item]:
        taken: list[_Item] = []
        rows = 0
        pending = self._pending
        while pending:
            item = pending[0]
            if taken and rows + item.columns.rows > self.max_batch_size:
                break
            pending.popleft()
            taken.append(item)
            rows += item.columns.rows
            if rows >= self.max_batch_size or not self.enabled:
                break
        self._rows -= rows
        return taken

    def _should_offload(self) -> bool:
        if self.offload == "never":
            return False
        if self.offload == "always":
            return True
        return self._avg_seconds is not None and self._avg_seconds > self.offload_threshold

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items = self._take()
        if not items:
            return
        parts = [item.columns for item in items]
        assert self._loop is not None
        if self._should_offload():
            self._busy = True
            done = self._loop.run_in_executor(self.executor, self._run, parts)
            done.add_done_callback(lambda fut: self._finish(items, fut))
        else:
            self._deliver(items, self._run(parts))
            self._reschedule()

    def _finish(self, items: list[_Item], done: asyncio.Future[_Outcome]) -> None:
        self._busy = False
        exc = done.exception()
        outcome = _Outcome([exc] * len(items), 0.0) if exc is not None else done.result()
        self._deliver(items, outcome)
        if self._pending:
            # These requests waited for the running predict already; do not make them wait more.
            self._flush()

    def _reschedule(self) -> None:
        if self._pending and self._timer is None and not self._busy:
            assert self._loop is not None
            self._deadline = self._loop.time()
            self._timer = self._loop.call_soon(self._tick)

    def _deliver(self, items: list[_Item], outcome: _Outcome) -> None:
        rows = sum(item.columns.rows for item in items)
        if outcome.seconds:
            self.observe(outcome.seconds)
        if self.on_batch is not None:
            self.on_batch(rows, outcome.seconds)
        for item, result in zip(items, outcome.results, strict=True):
            if item.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _predict(self, parts: Sequence[Columns]) -> np.ndarray:
        frame = self.frames.build(parts)
        output = self.model.predict(frame)
        if not isinstance(output, np.ndarray):
            output = np.asarray(output)
        rows = len(frame)
        if output.ndim == 0 or output.shape[0] != rows:
            raise ServingError(
                f"model '{self.model.name}' version '{self.model.version}' returned shape "
                f"{output.shape} for {rows} rows"
            )
        return output

    def _run(self, parts: Sequence[Columns]) -> _Outcome:
        """Build the frame, predict, split the output per request (thread-safe)."""
        start = time.perf_counter()
        try:
            output = self._predict(parts)
        except Exception as exc:
            if len(parts) == 1:
                return _Outcome([_as_serving_error(self.model, exc)], time.perf_counter() - start)
            # One bad request must not fail its batch-mates: retry each alone.
            results: list[np.ndarray | BaseException] = []
            for part in parts:
                try:
                    results.append(self._predict([part]))
                except Exception as single:
                    results.append(_as_serving_error(self.model, single))
            return _Outcome(results, time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if len(parts) == 1:
            return _Outcome([output], seconds)
        split: list[np.ndarray | BaseException] = []
        offset = 0
        for part in parts:
            split.append(output[offset : offset + part.rows])
            offset += part.rows
        return _Outcome(split, seconds)


def _as_serving_error(model: ServableModel, exc: Exception) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    return ServingError(
        f"model '{model.name}' version '{model.version}' failed to predict: "
        f"{type(exc).__name__}: {exc}"
    )
