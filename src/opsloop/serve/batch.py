"""Batch scoring: a registered model over Parquet files, in bounded memory, by several workers.

The input (a glob of Parquet files) is cut into parts of whole row groups; each part is read
as a stream of record batches of at most ``batch_rows`` rows (pyarrow), scored, and written
to its own Parquet file in the output folder as it goes. Memory is therefore bounded by the
batch size and the number of workers, never by the input. Parts are scored by ``workers``
forked processes (``local``) or Ray tasks (``ray``, the ``ray`` extra); the model is loaded
once, in the calling process, and shared with the workers.

Each call is recorded as a run of kind ``batch_predict`` whose parameters name the model
version, the input files (with their sizes and row counts) and the output folder, so which
model scored which data can be read back (lineage).
"""

from __future__ import annotations

import glob
import importlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from opsloop.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from opsloop.registry import LoadedModel
    from opsloop.store import Store

__all__ = ["BatchPart", "BatchPredictResult", "plan_parts", "predict_batch", "score_part"]

DEFAULT_BATCH_ROWS = 65_536
"""Rows read, scored and written at once per worker."""
PREDICTION = "prediction"
"""The output column."""


@dataclass(frozen=True)
class BatchPart:
    """Whole row groups of one input file, scored into one output file."""

    index: int
    path: str
    row_groups: tuple[int, ...]
    rows: int
    out: str


@dataclass
class BatchPredictResult:
    """What a batch scoring did."""

    run_id: str
    model_uri: str
    rows: int
    parts: list[str]
    seconds: float
    workers: int
    executor: str
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows scored per second, reading and writing included."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _files(pattern: str) -> list[str]:
    found = sorted(glob.glob(pattern, recursive=True))
    if not found and Path(pattern).is_dir():
        found = sorted(str(p) for p in Path(pattern).rglob("*.parquet"))
    files = [f for f in found if Path(f).is_file()]
    if not files:
        raise ConfigError(f"--input {pattern!r}: no Parquet file matches")
    return files


def plan_parts(
    files: Sequence[str], out_dir: Path, *, workers: int, batch_rows: int
) -> list[BatchPart]:
    """Cut the input into parts of whole row groups: at least two per worker when the row
    groups allow, so that the workers finish together."""
    groups: list[tuple[str, int, int]] = []
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from None
        groups.extend((path, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups))
    total = sum(n for _, _, n in groups)
    target = max(batch_rows, -(-total // max(1, 2 * workers)))
    parts: list[BatchPart] = []
    current: list[int] = []
    current_rows = 0
    current_path: str | None = None

    def close() -> None:
        nonlocal current, current_rows
        if current_path is not None and current:
            index = len(parts)
            out = str(out_dir / f"part-{index:05d}.parquet")
            parts.append(BatchPart(index, current_path, tuple(current), current_rows, out))
        current, current_rows = [], 0

    for path, group, rows in groups:
        if path != current_path or current_rows >= target:
            close()
            current_path = path
        current.append(group)
        current_rows += rows
    close()
    return parts


def score_part(
    part: BatchPart,
    predict: Callable[[Any], Any],
    columns: Sequence[str],
    keep: Sequence[str],
    batch_rows: int,
) -> int:
    """Score one part batch by batch into its output file; the number of rows written."""
    source = pq.ParquetFile(part.path)
    wanted = list(dict.fromkeys([*columns, *keep]))
    missing = [c for c in wanted if c not in source.schema_arrow.names]
    if missing:
        raise DataError(f"{part.path}: missing input columns: {', '.join(missing)}")
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for batch in source.iter_batches(
            batch_size=batch_rows, row_groups=list(part.row_groups), columns=wanted
        ):
            frame = batch.to_pandas()
            labels = predict(frame.loc[:, list(columns)])
            out = {k: frame[k].to_numpy() for k in keep}
            out[PREDICTION] = labels
            table = pa.table(out)
            if writer is None:
                writer = pq.ParquetWriter(part.out, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


# -- the local executor: forked worker processes --------------------------------------------

_WORKER: dict[str, Any] = {}


def _score_in_worker(part: BatchPart) -> int:
    return score_part(
        part, _WORKER["predict"], _WORKER["columns"], _WORKER["keep"], _WORKER["batch_rows"]
    )


def _score_local(
    parts: list[BatchPart],
    predict: Callable[[Any], Any],
    columns: list[str],
    keep: list[str],
    batch_rows: int,
    workers: int,
    on_part: Callable[[int], None],
) -> int:
    if workers == 1:
        total = 0
        for part in parts:
            rows = score_part(part, predict, columns, keep, batch_rows)
            total += rows
            on_part(rows)
        return total
    # Forked: the workers share the loaded model with this process, nothing is pickled.
    _WORKER.update(predict=predict, columns=columns, keep=keep, batch_rows=batch_rows)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            total = 0
            for rows in pool.imap_unordered(_score_in_worker, parts):
                total += rows
                on_part(rows)
            return total
    finally:
        _WORKER.clear()


def predict_batch(
    model: LoadedModel,
    inputs: str,
    output: Path | str,
    *,
    store: Store,
    executor: str = "local",
    workers: int = 1,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep: Sequence[str] = (),
    address: str | None = None,
    project: str = "",
    on_part: Callable[[int], None] | None = None,
) -> BatchPredictResult:
    """Score the Parquet files ``inputs`` (a glob) with ``model`` into ``output``.

    Args:
        model: The loaded model version.
        inputs: Glob of Parquet files (``data/*.parquet``), or a folder.
        output: Folder for the ``part-NNNNN.parquet`` files; created, and must hold no parts.
        store: Metadata store the run is recorded in.
        executor: ``local`` (forked processes) or ``ray``.
        workers: Parts scored at once.
        batch_rows: Rows read, scored and written at once per worker.
        keep: Input columns copied next to the prediction (an id, say).
        address: Ray cluster for the ``ray`` executor.
        project: Project name of the run.
        on_part: Called with the rows of every part scored (progress).

    Raises:
        ConfigError: No input file, an unknown executor, bad sizes, or parts in ``output``.
        DataError: An input file is unreadable or lacks a model input column.
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"executor {executor!r}: batch scoring runs on 'local' or 'ray'")
    if workers < 1 or batch_rows < 1:
        raise ConfigError("workers and batch_rows must be at least 1")
    files = _files(inputs)
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("part-*.parquet")):
        raise ConfigError(f"--output {out_dir} already holds part files: name an empty folder")
    parts = plan_parts(files, out_dir, workers=workers, batch_rows=batch_rows)
    columns = [c.name for c in model.signature]
    inputs_meta = [
        {"path": os.path.abspath(f), "bytes": os.path.getsize(f), "rows": _rows(f)} for f in files
    ]
    run = store.runs.create(
        f"predict {model.name}",
        kind="batch_predict",
        project=project,
        params={
            "model": model.uri,
            "model_version": model.version,
            "input": inputs,
            "inputs": inputs_meta,
            "output": str(out_dir.resolve()),
            "executor": executor,
            "workers": workers,
            "batch_rows": batch_rows,
        },
    )
    started = time.perf_counter()
    progress = on_part or (lambda rows: None)
    try:
        if executor == "ray":
            backend = importlib.import_module("opsloop.serve.batch_ray")
            rows = backend.score_parts(
                parts,
                model.model.predict,
                columns,
                list(keep),
                batch_rows,
                workers,
                address,
                progress,
            )
        else:
            rows = _score_local(
                parts, model.model.predict, columns, list(keep), batch_rows, workers, progress
            )
    except BaseException as exc:
        store.runs.finish(run.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    seconds = time.perf_counter() - started
    store.runs.set_tags(
        run.id,
        {"rows": rows, "parts": len(parts), "seconds": round(seconds, 3)},
    )
    store.runs.finish(run.id, "finished")
    return BatchPredictResult(
        run_id=run.id,
        model_uri=model.uri,
        rows=rows,
        parts=[p.out for p in parts],
        seconds=seconds,
        workers=workers,
        executor=executor,
        inputs=inputs_meta,
    )


def _rows(path: str) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)
