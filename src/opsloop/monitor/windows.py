"""Windows of the prediction log as DataFrames, with the feedback labels joined in.

The model server writes one prediction row per request: ``inputs`` is ``{column: [values]}``
(a request may carry several rows) and ``outputs`` is ``{"values": [...]}`` with one entry per
row, a list of class probabilities for classifiers (the positive class last) or a number for
regressors. Feedback rows carry ``{"value": label}`` for a request, one label, or a list with
one label per row of a multi-row request; when a request got several labels, the latest wins.

A request of many rows may be logged out of line (see :mod:`opsloop.serve.store_sink`): its
rows in a Parquet chunk of the artifact store (``chunk``), or a seeded sample of them inline
(``outputs["log"]["index"]`` gives their positions), or only counted. A window counts every
request with its real number of rows; it reads the chunks back, at most ``max_rows`` rows per
window (beyond, a seeded sample of each chunk, said in a log line and the window's notes).

Monitors read windows ``[since, until)`` of this log. Window bounds are aligned to multiples of
the window length since the Unix epoch, so that every run, whatever its clock, cuts the same
windows.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import MonitorError, OpsloopError
from opsloop.store.prediction_chunks import read_chunk

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from opsloop.artifacts import ArtifactStore
    from opsloop.store import Store
    from opsloop.store.types import PredictionInfo

logger = logging.getLogger("opsloop.monitor")

__all__ = [
    "DEFAULT_WINDOW_MAX_ROWS",
    "LABEL",
    "META_COLUMNS",
    "MODEL",
    "OUTPUT",
    "PREDICTION",
    "REQUEST_ID",
    "REQUEST_TIME",
    "VERSION",
    "Label",
    "PredictionWindow",
    "align",
    "labelled_window",
    "latest_labels",
    "load_window",
    "read_labels",
    "recent_labelled_rows",
    "rows_frame",
    "window_bounds",
]

REQUEST_ID = "request_id"
REQUEST_TIME = "request_time"
MODEL = "model_name"
VERSION = "model_version"
#: The score monitoring watches: P(positive class) for classifiers, the prediction otherwise
#: (what the reference profile holds under the same name).
PREDICTION = "prediction"
#: The raw output entry of the row: the list of class probabilities, or the prediction.
OUTPUT = "output"
#: The row's ground-truth label, ``None`` while none has arrived.
LABEL = "label"
META_COLUMNS = (REQUEST_ID, REQUEST_TIME, MODEL, VERSION, PREDICTION, OUTPUT, LABEL)
"""Columns a window adds next to the features; a feature may not use these names."""

DEFAULT_WINDOW_MAX_ROWS = 500_000
"""Most rows one window reads back from the chunks of large requests (then it samples)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Request ids per IN (...) query: well under every backend's bound-parameter limit.
_ID_CHUNK = 500
_REQUEST_COLUMNS = (REQUEST_ID, REQUEST_TIME, MODEL, VERSION, "latency_ms", "rows")


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def align(value: datetime, step: timedelta) -> datetime:
    """The window boundary at or before ``value``: a multiple of ``step`` since the epoch."""
    if step <= timedelta(0):
        raise MonitorError(f"window length must be positive, got {step}")
    return _EPOCH + ((utc(value) - _EPOCH) // step) * step


def window_bounds(
    start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, datetime]]:
    """Consecutive windows covering ``[start, end)``, cut at aligned boundaries.

    ``start`` need not be aligned (a run after the window length changed continues where the
    last one stopped): the first window then ends at the next boundary. ``end`` should be a
    boundary; a trailing part shorter than ``step`` is still a window.
    """
    start, end = utc(start), utc(end)
    out: list[tuple[datetime, datetime]] = []
    lo = start
    while lo < end:
        hi = min(align(lo, step) + step, end)
        out.append((lo, hi))
        lo = hi
    return out


@dataclass(frozen=True)
class PredictionWindow:
    """The prediction log of one deployment over ``[since, until)``.

    Attributes:
        deployment: The deployment.
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        rows: One row per predicted row: the input columns, then :data:`META_COLUMNS`.
        requests: One row per request: ``request_id``, ``request_time``, ``model_name``,
            ``model_version``, ``latency_ms`` and ``rows``.
        malformed: Requests left out of ``rows`` because their inputs and outputs do not
            have the same number of rows (they still count in ``requests``).
        total_rows: Rows predicted by the well-formed requests, also those logged out of
            line, sampled or only counted (``rows`` may hold fewer); None: ``len(rows)``.
        notes: What could not be read as logged (a chunk gone, no artifact store), or was
            read as a sample.
    """

    deployment: str
    since: datetime
    until: datetime
    rows: pd.DataFrame
    requests: pd.DataFrame
    malformed: list[str] = field(default_factory=list)
    total_rows: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        """Rows predicted in the window (see ``total_rows``)."""
        return self.total_rows if self.total_rows is not None else len(self.rows)

    @property
    def seconds(self) -> float:
        """Length of the window in seconds."""
        return (self.until - self.since).total_seconds()

    @property
    def feature_columns(self) -> list[str]:
        """The input columns, in the order they first appeared."""
        return [str(c) for c in self.rows.columns if c not in META_COLUMNS]

    def versions(self) -> list[tuple[str, str]]:
        """``(model, version)`` pairs that answered rows, most rows first."""
        if self.rows.empty:
            return []
        counts = self.rows.groupby([MODEL, VERSION], sort=False).size()
        ordered = sorted(counts.items(), key=lambda item: -int(item[1]))
        return [(str(k[0]), str(k[1])) for k, _ in ordered]

    def of_version(self, model: str, version: str) -> pd.DataFrame:
        """The rows answered by one model version."""
        mask = (self.rows[MODEL] == model) & (self.rows[VERSION] == version)
        return self.rows.loc[mask].reset_index(drop=True)


def _output_score(entry: Any) -> Any:
    """The score of one output entry: the last class probability, or the value itself."""
    if isinstance(entry, list | tuple):
        return entry[-1] if entry else None
    return entry


def _row_labels(value: Any, n: int) -> list[Any] | None:
    """Per-row labels of a request's label, or None when it cannot be matched to its rows."""
    if isinstance(value, list | tuple) and len(value) == n:
        return list(value)
    if n == 1:
        return [value]
    return None


def rows_frame(
    predictions: Sequence[PredictionInfo],
    labels: Mapping[str, Any] | None = None,
    *,
    artifacts: ArtifactStore | None = None,
    max_rows: int | None = DEFAULT_WINDOW_MAX_ROWS,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Flatten prediction records into one DataFrame row per predicted row.

    Args:
        predictions: Prediction records, in time order.
        labels: The label value of each request id that has one (see :func:`latest_labels`).
        artifacts: The artifact store holding the chunks of large requests; without one,
            their rows are left out (the requests still count).
        max_rows: Most rows read back from chunks (then a seeded sample of each); None: all.

    Returns:
        ``(rows, requests, malformed)``: see :class:`PredictionWindow`.

    Raises:
        MonitorError: An input column has a name of :data:`META_COLUMNS`.
    """
    flat = _flatten(predictions, labels or {}, artifacts, max_rows, "rows")
    return flat.rows, flat.requests, flat.malformed


@dataclass
class _Flat:
    rows: pd.DataFrame
    requests: pd.DataFrame
    malformed: list[str]
    total_rows: int
    notes: list[str]


def _log_of(p: PredictionInfo) -> dict[str, Any]:
    """How a request was logged (``outputs["log"]``), empty for a request kept inline."""
    log = p.outputs.get("log")
    return log if isinstance(log, dict) else {}


def _flatten(
    predictions: Sequence[PredictionInfo],
    labels: Mapping[str, Any],
    artifacts: ArtifactStore | None,
    max_rows: int | None,
    where: str,
) -> _Flat:
    """The rows, requests and malformed requests of ``predictions`` (see :func:`rows_frame`)."""
    requests: dict[str, list[Any]] = {name: [] for name in _REQUEST_COLUMNS}
    malformed: list[str] = []
    notes: list[str] = []
    picks = _chunk_picks(predictions, max_rows, where, notes)
    pieces: list[pd.DataFrame] = []
    inline: list[tuple[PredictionInfo, list[int] | None]] = []
    total = 0
    for p in predictions:
        n = p.row_count
        requests[REQUEST_ID].append(p.request_id)
        requests[REQUEST_TIME].append(p.time)
        requests[MODEL].append(p.model_name)
        requests[VERSION].append(p.model_version)
        requests["latency_ms"].append(float(p.latency_ms))
        requests["rows"].append(n)
        log = _log_of(p)
        if p.chunk:
            total += n
            if inline:
                pieces.append(_inline_frame(inline, labels))
                inline = []
            piece = _chunk_frame(p, artifacts, picks.get(p.id), labels, notes)
            if piece is not None:
                pieces.append(piece)
            continue
        if log.get("policy") == "drop" and n > 0:
            total += n
            continue
        values = p.outputs.get("values")
        kept = len(values) if isinstance(values, list) else 0
        index = log.get("index") if log.get("policy") == "sample" else None
        inputs = p.inputs or {}
        if (
            kept == 0
            or any(not isinstance(v, list) or len(v) != kept for v in inputs.values())
            or (index is not None and not _positions_fit(index, kept, n))
        ):
            malformed.append(p.request_id)
            continue
        total += n
        inline.append((p, index))
    if inline or not pieces:
        pieces.append(_inline_frame(inline, labels))
    rows = pieces[0] if len(pieces) == 1 else _concat(pieces)
    request_frame = pd.DataFrame(
        {
            REQUEST_ID: pd.Series(requests[REQUEST_ID], dtype=object),
            REQUEST_TIME: pd.to_datetime(pd.Series(requests[REQUEST_TIME], dtype=object), utc=True),
            MODEL: pd.Series(requests[MODEL], dtype=object),
            VERSION: pd.Series(requests[VERSION], dtype=object),
            "latency_ms": np.asarray(requests["latency_ms"], dtype=np.float64),
            "rows": np.asarray(requests["rows"], dtype=np.int64),
        }
    )
    return _Flat(rows, request_frame, malformed, total, notes)


def _positions_fit(index: Any, kept: int, n: int) -> bool:
    """Whether a sample's positions are ``kept`` row numbers of a request of ``n`` rows."""
    return (
        isinstance(index, list)
        and len(index) == kept
        and all(isinstance(i, int) and 0 <= i < n for i in index)
    )


def _chunk_picks(
    predictions: Sequence[PredictionInfo], max_rows: int | None, where: str, notes: list[str]
) -> dict[int, list[int]]:
    """The rows to read of each chunk when all of them would exceed ``max_rows``: a seeded
    sample of each chunk, in proportion to its rows (at least one); empty when all fit."""
    chunked = [p for p in predictions if p.chunk and p.row_count > 0]
    total = sum(p.row_count for p in chunked)
    if max_rows is None or total <= max_rows:
        return {}
    picks: dict[int, list[int]] = {}
    for p in chunked:
        n = p.row_count
        k = min(n, max(1, (max_rows * n) // total))
        # Seeded by the chunk, so every read of a window takes the same rows.
        rng = np.random.default_rng(zlib.crc32(str(p.chunk).encode()))
        picks[p.id] = np.sort(rng.choice(n, size=k, replace=False)).tolist()
    read = sum(len(v) for v in picks.values())
    message = (
        f"{where}: {len(chunked)} large request(s) hold {total} rows, more than the "
        f"{max_rows} a window reads; a seeded sample of {read} rows was read"
    )
    logger.warning("%s", message)
    notes.append(message)
    return picks


def _inline_frame(
    predictions: Sequence[tuple[PredictionInfo, list[int] | None]], labels: Mapping[str, Any]
) -> pd.DataFrame:
    """The rows of requests kept inline (whole, or a sample at the given positions)."""
    columns: dict[str, list[Any]] = {}
    meta: dict[str, list[Any]] = {name: [] for name in META_COLUMNS}
    total = 0
    for p, index in predictions:
        outputs = list(p.outputs["values"])
        n = len(outputs)
        inputs = p.inputs or {}
        for name, column_values in inputs.items():
            _check_name(p.request_id, name)
            column = columns.get(name)
            if column is None:
                # A column first seen now was absent from the earlier rows.
                column = columns[name] = [None] * total
            column.extend(column_values)
        for name, column in columns.items():
            if name not in inputs:
                column.extend([None] * n)
        meta[REQUEST_ID].extend([p.request_id] * n)
        meta[REQUEST_TIME].extend([p.time] * n)
        meta[MODEL].extend([p.model_name] * n)
        meta[VERSION].extend([p.model_version] * n)
        meta[PREDICTION].extend(_output_score(o) for o in outputs)
        meta[OUTPUT].extend(outputs)
        meta[LABEL].extend(_labels_for(p, labels, index, n))
        total += n
    data: dict[str, Any] = {name: _column(values) for name, values in columns.items()}
    for name in META_COLUMNS:
        data[name] = _meta_column(name, meta[name])
    return pd.DataFrame(data, index=pd.RangeIndex(total))


def _check_name(request_id: str, name: str) -> None:
    if name in META_COLUMNS:
        raise MonitorError(
            f"request {request_id}: input column '{name}' has a name the monitor "
            f"reserves ({', '.join(META_COLUMNS)})"
        )


def _labels_for(
    p: PredictionInfo, labels: Mapping[str, Any], index: Sequence[int] | None, kept: int
) -> list[Any]:
    """The labels of the ``kept`` rows read of a request (at positions ``index`` if given)."""
    if p.request_id not in labels:
        return [None] * kept
    row_labels = _row_labels(labels[p.request_id], p.row_count)
    if row_labels is None:
        return [None] * kept
    if index is None:
        return row_labels if len(row_labels) == kept else [None] * kept
    return [row_labels[i] for i in index]


def _chunk_frame(
    p: PredictionInfo,
    artifacts: ArtifactStore | None,
    index: list[int] | None,
    labels: Mapping[str, Any],
    notes: list[str],
) -> pd.DataFrame | None:
    """The rows of a request kept in a chunk (those at ``index``, or all); None when the
    chunk cannot be read (said in ``notes``)."""

    if artifacts is None:
        notes.append(
            f"request {p.request_id}: its {p.row_count} rows are in chunk {p.chunk}, and no "
            "artifact store was given to read it; they are left out"
        )
        return None
    try:
        data = read_chunk(artifacts, str(p.chunk), rows=index)
    except OpsloopError as exc:
        message = f"request {p.request_id}: chunk {p.chunk} cannot be read ({exc}); left out"
        logger.warning("%s", message)
        notes.append(message)
        return None
    k = len(data.outputs)
    frame: dict[str, Any] = {}
    for name in data.inputs.columns:
        _check_name(p.request_id, str(name))
        frame[str(name)] = _chunk_column(data.inputs[name])
    if index is None and k != p.row_count:
        # The chunk disagrees with the row about its size: read what it holds, unlabelled.
        index = list(range(k)) if p.row_count >= k else None
    frame[REQUEST_ID] = pd.Series([p.request_id] * k, dtype=object)
    frame[REQUEST_TIME] = pd.Series(pd.Timestamp(utc(p.time)), index=pd.RangeIndex(k))
    frame[MODEL] = pd.Series([p.model_name] * k, dtype=object)
    frame[VERSION] = pd.Series([p.model_version] * k, dtype=object)
    frame[PREDICTION] = _column([_output_score(o) for o in data.outputs])
    frame[OUTPUT] = pd.Series(data.outputs, dtype=object)
    frame[LABEL] = pd.Series(_labels_for(p, labels, index, k), dtype=object)
    return pd.DataFrame(frame, index=pd.RangeIndex(k))


def _chunk_column(column: pd.Series) -> pd.Series:
    """A column read from a chunk, typed as :func:`_column` types inline values."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return column.astype(object).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(dtype):
        return pd.Series(column.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return _column(column.astype(object).where(column.notna(), None).tolist())
    return column.reset_index(drop=True)


def _concat(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Pieces of rows as one frame: features in the order they first appeared, then the
    meta columns; a feature a piece lacks is missing (None, or NaN in a numeric column)."""
    rows = pd.concat(pieces, ignore_index=True, sort=False)
    features = [c for c in rows.columns if c not in META_COLUMNS]
    rows = rows[[*features, *META_COLUMNS]]
    for name in [*features, LABEL, OUTPUT]:
        column = rows[name]
        if pd.api.types.is_object_dtype(column.dtype):
            rows[name] = column.where(column.notna(), None)
    return rows


def _column(values: list[Any]) -> pd.Series:
    """An input column: numbers become float64 (``None`` as NaN), anything else stays as is."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return pd.Series(np.array([math.nan if v is None else v for v in values], dtype=np.float64))
    return pd.Series(values, dtype=object)


def _meta_column(name: str, values: list[Any]) -> pd.Series:
    if name == REQUEST_TIME:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    if name == PREDICTION:
        return _column(values)
    return pd.Series(values, dtype=object)


def latest_labels(
    store: Store, request_ids: Iterable[str], *, deployment: str | None = None
) -> dict[str, Any]:
    """The latest label value of each request id that has feedback."""
    ids = sorted(set(request_ids))
    out: dict[str, Any] = {}
    for i in range(0, len(ids), _ID_CHUNK):
        # Oldest first, so a later label overwrites an earlier one.
        for fb in store.predictions.read_feedback(
            request_ids=ids[i : i + _ID_CHUNK], deployment=deployment
        ):
            if "value" in fb.label:
                out[fb.request_id] = fb.label["value"]
    return out


def load_window(
    store: Store,
    deployment: str,
    since: datetime,
    until: datetime,
    *,
    labels: bool = True,
    artifacts: ArtifactStore | None = None,
    max_rows: int | None = DEFAULT_WINDOW_MAX_ROWS,
) -> PredictionWindow:
    """The predictions of ``deployment`` (shadow answers left out) in ``[since, until)``.

    Args:
        store: The metadata store.
        deployment: The deployment.
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        labels: Join the labels that have arrived so far (latest wins).
        artifacts: The artifact store holding the chunks of large requests; without one
            their rows are left out (they still count, and the window's notes say so).
        max_rows: Most rows read back from chunks (then a seeded sample of each); None: all.
    """
    since, until = utc(since), utc(until)
    predictions = store.predictions.read(deployment=deployment, since=since, until=until)
    found = (
        latest_labels(store, (p.request_id for p in predictions), deployment=deployment)
        if labels and predictions
        else {}
    )
    where = f"{deployment} [{since:%Y-%m-%d %H:%M:%S}, {until:%Y-%m-%d %H:%M:%S})"
    flat = _flatten(predictions, found, artifacts, max_rows, where)
    return PredictionWindow(
        deployment,
        since,
        until,
        flat.rows,
        flat.requests,
        flat.malformed,
        flat.total_rows,
        flat.notes,
    )


@dataclass(frozen=True)
class Label:
    """One feedback label: when it arrived, for which request, and its value."""

    time: datetime
    request_id: str
    value: Any


def read_labels(store: Store, deployment: str, since: datetime, until: datetime) -> list[Label]:
    """The labels of ``deployment`` that arrived in ``[since, until)``, oldest first."""
    return [
        Label(utc(t), rid, label["value"])
        for t, rid, label in store.predictions.labels_between(deployment, utc(since), utc(until))
        if isinstance(label, dict) and "value" in label
    ]


def labelled_window(
    store: Store,
    deployment: str,
    since: datetime,
    until: datetime,
    *,
    labels: Sequence[Label] | None = None,
    artifacts: ArtifactStore | None = None,
    max_rows: int | None = DEFAULT_WINDOW_MAX_ROWS,
) -> PredictionWindow:
    """The rows whose label arrived in ``[since, until)``, whenever they were predicted.

    Labels come late (a churn label a month after the prediction), so model quality is
    measured when they arrive: each window scores the predictions labelled in it, with the
    latest label a request got in the window. The window's ``requests`` are the labelled
    requests.

    Args:
        store: The metadata store.
        deployment: The deployment.
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        labels: The labels that arrived in the window, oldest first, when the caller has
            read them already (see :func:`read_labels`).
        artifacts: As for :func:`load_window`.
        max_rows: As for :func:`load_window`.
    """
    since, until = utc(since), utc(until)
    if labels is None:
        labels = read_labels(store, deployment, since, until)
    found = {label.request_id: label.value for label in labels}
    ids = sorted(found)
    predictions = store.predictions.read_by_request(deployment, ids)
    where = f"{deployment} labelled in [{since:%Y-%m-%d %H:%M:%S}, {until:%Y-%m-%d %H:%M:%S})"
    flat = _flatten(predictions, found, artifacts, max_rows, where)
    return PredictionWindow(
        deployment,
        since,
        until,
        flat.rows,
        flat.requests,
        flat.malformed,
        flat.total_rows,
        flat.notes,
    )


def recent_labelled_rows(
    store: Store,
    deployment: str,
    *,
    until: datetime,
    since: datetime,
    max_rows: int = 2_000,
    artifacts: ArtifactStore | None = None,
) -> pd.DataFrame:
    """The newest labelled rows of ``deployment``: what production looks like now.

    The labels that arrived in ``[since, until)`` are taken newest first until their requests
    hold ``max_rows`` rows; the result has the input columns and :data:`LABEL` (shadow
    answers left out), newest first. Empty when no label arrived.

    Args:
        store: The metadata store.
        deployment: The deployment.
        until: End of the label window (exclusive).
        since: Start of the label window (inclusive).
        max_rows: Most rows returned.
        artifacts: As for :func:`load_window`.
    """
    labels = read_labels(store, deployment, since, until)
    if not labels:
        return pd.DataFrame()
    # The latest label of a request wins; each request counts once, newest first.
    newest: dict[str, Label] = {}
    for label in reversed(labels):
        newest.setdefault(label.request_id, label)
    picked = list(newest.values())[:max_rows]
    win = labelled_window(
        store,
        deployment,
        since,
        until,
        labels=list(reversed(picked)),
        artifacts=artifacts,
        max_rows=max_rows,
    )
    rows = win.rows
    if rows.empty:
        return rows
    rows = rows[rows[LABEL].notna()].sort_values(REQUEST_TIME, ascending=False, kind="stable")
    keep = [c for c in rows.columns if c not in META_COLUMNS] + [LABEL]
    return rows[keep].head(max_rows).reset_index(drop=True)
