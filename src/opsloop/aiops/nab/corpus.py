"""Reading a folder laid out like the Numenta Anomaly Benchmark.

The layout::

    <root>/data/<category>/<file>.csv            timestamp,value
    <root>/labels/combined_windows.json          {"<category>/<file>.csv": [[start, end], ...]}
    <root>/config/profiles.json                  {"standard": {"CostMatrix": {...}}, ...}
    <root>/results/<detector>/<category>/<detector>_<file>.csv   timestamp,anomaly_score

The corpus is the set of data files that have an entry in the windows file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsloop.aiops.nab.scoring import (
    PROBATIONARY_FRACTION,
    STANDARD_PROFILES,
    CostProfile,
    FileLabels,
    label_rows,
)
from opsloop.errors import DataError

__all__ = [
    "NabCorpus",
    "NabFile",
    "load_profiles",
    "load_results",
    "load_windows",
    "read_series",
]

FloatArray = npt.NDArray[np.float64]
TimeArray = npt.NDArray[np.datetime64]

WINDOWS_FILE = Path("labels") / "combined_windows.json"
PROFILES_FILE = Path("config") / "profiles.json"


@dataclass(frozen=True)
class NabFile:
    """One data file of the corpus with its labels.

    Attributes:
        name: Corpus path, e.g. ``realKnownCause/nyc_taxi.csv``.
        timestamps: Row timestamps (``datetime64[ns]``).
        values: Row values.
        labels: Scoring geometry of the file.
    """

    name: str
    timestamps: TimeArray
    values: FloatArray
    labels: FileLabels

    @property
    def category(self) -> str:
        """The folder the file sits in, e.g. ``realKnownCause``."""
        return self.name.rsplit("/", 1)[0] if "/" in self.name else ""


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc


def load_profiles(path: str | Path) -> dict[str, CostProfile]:
    """Read NAB cost profiles (``config/profiles.json``).

    Args:
        path: The profiles file.

    Returns:
        Profiles by name.

    Raises:
        DataError: The file is missing, not JSON, or a weight is missing.
    """
    path = Path(path)
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected an object of profiles")
    profiles: dict[str, CostProfile] = {}
    for name, body in raw.items():
        matrix = body.get("CostMatrix") if isinstance(body, dict) else None
        if not isinstance(matrix, dict):
            raise DataError(f"{path}: profile '{name}' has no 'CostMatrix' object")
        try:
            profiles[name] = CostProfile(
                name=name,
                tp_weight=float(matrix["tpWeight"]),
                fp_weight=float(matrix["fpWeight"]),
                fn_weight=float(matrix["fnWeight"]),
                tn_weight=float(matrix.get("tnWeight", 1.0)),
            )
        except KeyError as exc:
            raise DataError(f"{path}: profile '{name}': CostMatrix lacks {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: profile '{name}': weights must be numbers") from exc
    return profiles


def load_windows(path: str | Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Read NAB anomaly windows (``labels/combined_windows.json``).

    Args:
        path: The windows file.

    Returns:
        Windows per corpus path, as ``(start, end)`` timestamps, in time order.

    Raises:
        DataError: The file is missing, not JSON, or a window is malformed.
    """
    path = Path(path)
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected an object mapping file paths to window lists")
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for name, items in raw.items():
        parsed: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        for k, item in enumerate(items):
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise DataError(f"{path}: '{name}' window {k} is not a [start, end] pair")
            try:
                start, end = pd.Timestamp(item[0]), pd.Timestamp(item[1])
            except ValueError as exc:
                raise DataError(f"{path}: '{name}' window {k}: bad timestamp: {exc}") from exc
            if end < start:
                raise DataError(f"{path}: '{name}' window {k} ends before it starts")
            parsed.append((start, end))
        parsed.sort()
        windows[name] = parsed
    return windows


def read_series(path: str | Path, column: str = "value") -> tuple[TimeArray, FloatArray]:
    """Read a ``timestamp,<column>`` CSV file.

    Args:
        path: The CSV file.
        column: The value column (``value`` for data, ``anomaly_score`` for results).

    Returns:
        Timestamps (``datetime64[ns]``) and values.

    Raises:
        DataError: The file is missing, lacks a column, or holds a bad timestamp or value.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc
    for needed in ("timestamp", column):
        if needed not in frame.columns:
            raise DataError(f"{path}: missing column '{needed}' (columns: {list(frame.columns)})")
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce", format="ISO8601")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        raise DataError(f"{path}:{int(bad[0]) + 2}: column 'timestamp': not a timestamp")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & frame[column].notna().to_numpy())
    if bad.size:
        raise DataError(f"{path}:{int(bad[0]) + 2}: column '{column}': not a number")
    times = stamps.to_numpy(dtype="datetime64[ns]")
    return times, values.to_numpy(dtype=np.float64)


def _row_windows(
    times: TimeArray, windows: list[tuple[pd.Timestamp, pd.Timestamp]]
) -> list[tuple[int, int]]:
    # Some NAB files step back in time for a few rows, so rows are matched in file order
    # (as NAB does) rather than by binary search: a window starts at the first row at or after
    # its start time and ends before the next row past its end time.
    rows: list[tuple[int, int]] = []
    n = times.size
    cursor = 0
    for start, end in windows:
        t_start = np.datetime64(start.to_datetime64(), "ns")
        t_end = np.datetime64(end.to_datetime64(), "ns")
        after_start = np.flatnonzero(times[cursor:] >= t_start)
        if not after_start.size:
            continue
        left = cursor + int(after_start[0])
        past_end = np.flatnonzero(times[left:] > t_end)
        right = left + int(past_end[0]) - 1 if past_end.size else n - 1
        if left <= right:
            rows.append((left, right))
            cursor = right + 1
    return rows


@dataclass(frozen=True)
class NabCorpus:
    """An NAB-layout folder loaded into memory.

    Attributes:
        root: The folder.
        files: Data files by corpus path, sorted by path.
        profiles: Cost profiles by name.
    """

    root: Path
    files: dict[str, NabFile]
    profiles: dict[str, CostProfile]

    @classmethod
    def load(
        cls,
        root: str | Path,
        *,
        probationary_fraction: float = PROBATIONARY_FRACTION,
    ) -> NabCorpus:
        """Load the data files, windows and profiles of an NAB-layout folder.

        Args:
            root: Folder holding ``data/``, ``labels/`` and (optionally) ``config/``.
            probationary_fraction: Probationary share of each file.

        Returns:
            The corpus. Without ``config/profiles.json`` NAB's three standard profiles are used.

        Raises:
            DataError: The folder, a labelled data file or the windows file is missing or
                unreadable.
        """
        root = Path(root)
        if not (root / "data").is_dir():
            raise DataError(f"{root}: not an NAB folder (no 'data' directory)")
        windows = load_windows(root / WINDOWS_FILE)
        profiles_path = root / PROFILES_FILE
        profiles = (
            load_profiles(profiles_path) if profiles_path.exists() else dict(STANDARD_PROFILES)
        )
        files: dict[str, NabFile] = {}
        for name in sorted(windows):
            path = root / "data" / name
            if not path.exists():
                continue
            times, values = read_series(path)
            row_windows = _row_windows(times, windows[name])
            labels = label_rows(
                name,
                row_windows,
                len(times),
                n_windows=len(windows[name]),
                probationary_fraction=probationary_fraction,
            )
            files[name] = NabFile(name=name, timestamps=times, values=values, labels=labels)
        if not files:
            raise DataError(
                f"{root / 'data'}: no data file matches an entry of {root / WINDOWS_FILE}"
            )
        return cls(root=root, files=files, profiles=profiles)

    @property
    def labels(self) -> dict[str, FileLabels]:
        """Labels of every file, by corpus path."""
        return {name: f.labels for name, f in self.files.items()}

    @property
    def n_rows(self) -> int:
        """Rows over all files."""
        return sum(f.labels.n_rows for f in self.files.values())

    @property
    def n_windows(self) -> int:
        """Labelled windows over all files."""
        return sum(f.labels.n_windows for f in self.files.values())


def load_results(
    results_dir: str | Path, detector: str, corpus: NabCorpus
) -> dict[str, FloatArray]:
    """Read a detector's precomputed anomaly scores for every file of ``corpus``.

    Files are looked up as ``<results_dir>/<category>/<detector>_<file>.csv``.

    Args:
        results_dir: The detector's results folder, e.g. ``results/numenta``.
        detector: The detector's name (the file-name prefix).
        corpus: The corpus the results belong to.

    Returns:
        Anomaly scores per corpus path.

    Raises:
        DataError: A results file is missing, unreadable, or does not match its data file row
            for row.
    """
    results_dir = Path(results_dir)
    out: dict[str, FloatArray] = {}
    for name, data in corpus.files.items():
        category, _, file_name = name.rpartition("/")
        path = results_dir / category / f"{detector}_{file_name}"
        times, scores = read_series(path, column="anomaly_score")
        if times.shape != data.timestamps.shape:
            raise DataError(
                f"{path}: {times.size} rows, but data file '{name}' has {data.timestamps.size}"
            )
        mismatch = np.flatnonzero(times != data.timestamps)
        if mismatch.size:
            raise DataError(
                f"{path}:{int(mismatch[0]) + 2}: timestamp differs from data file '{name}'"
            )
        out[name] = scores
    return out
