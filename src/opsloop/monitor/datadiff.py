"""Compare two versions of a data set: schema, rows by key, and distribution shift per column.

* **schema** — columns added, removed, or whose type changed;
* **rows** — with a key (one or more columns), rows whose key is new, gone, or present in both
  with a different value in some shared column (counted per column, with examples); without
  a key, rows are compared whole over the shared columns, as multisets;
* **shift** — every shared column of the old version is profiled as a drift reference and the
  new version checked against it by :func:`~opsloop.monitor.drift.compute_drift`, so the PSI,
  the KS statistic (numeric), the chi-square or Jensen-Shannon distance (categorical) and the
  verdicts are the monitoring ones.

Versions are named ``PIPELINE.STEP.OUTPUT@REF`` — the data set names of the lineage events —
where ``REF`` is ``v1``, ``v2`` … (distinct values of that step output, oldest first),
``latest``, ``previous`` or a prefix of the artifact digest; a path or glob of CSV or Parquet
files is read as it is.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from opsloop.data import read_source
from opsloop.data.reference import build_reference_profile
from opsloop.errors import DataError, MonitorError, NotFoundError
from opsloop.monitor.drift import FeatureDrift, compute_drift
from opsloop.pipeline import load_value

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from opsloop.artifacts import ArtifactStore
    from opsloop.spec.monitoring import DriftThresholds
    from opsloop.store import Store

__all__ = [
    "ColumnChange",
    "DataDiff",
    "DatasetRef",
    "RowChanges",
    "dataset_versions",
    "diff_frames",
    "load_dataset",
]

_OK = ("succeeded", "cached")
_EXAMPLES = 10
_VERSION = re.compile(r"^v?(\d+)$")
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{6,64}$")


class DatasetRef(BaseModel):
    """One recorded version of a step output.

    Attributes:
        name: ``PIPELINE.STEP.OUTPUT``.
        version: 1 for the first distinct value seen, 2 for the next …
        digest: Artifact digest of the value.
        run_id: The first pipeline run that produced it.
        created_at: When that run started.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    digest: str
    run_id: str
    created_at: datetime

    @property
    def label(self) -> str:
        """``NAME@vN``."""
        return f"{self.name}@v{self.version}"


class ColumnChange(BaseModel):
    """A column added, removed, or whose type changed."""

    model_config = ConfigDict(frozen=True)

    column: str
    change: Literal["added", "removed", "type"]
    old_type: str | None = None
    new_type: str | None = None


class RowChanges(BaseModel):
    """Rows added, removed and changed between two versions.

    Attributes:
        key: The key columns; empty when rows were compared whole.
        added: Rows of the new version only.
        removed: Rows of the old version only.
        changed: Rows in both (by key) with a different value in a shared column; None
            without a key.
        unchanged: Rows in both, equal in every shared column.
        changed_by_column: Changed rows per shared column.
        added_keys: Example keys of added rows.
        removed_keys: Example keys of removed rows.
        changed_examples: Example changes: the key, the column, the old and the new value.
    """

    model_config = ConfigDict(frozen=True)

    key: list[str]
    added: int
    removed: int
    changed: int | None
    unchanged: int
    changed_by_column: dict[str, int] = Field(default_factory=dict)
    added_keys: list[Any] = Field(default_factory=list)
    removed_keys: list[Any] = Field(default_factory=list)
    changed_examples: list[dict[str, Any]] = Field(default_factory=list)


class DataDiff(BaseModel):
    """What changed between two versions of a data set.

    Attributes:
        old: Label of the old version.
        new: Label of the new version.
        old_rows: Rows of the old version.
        new_rows: Rows of the new version.
        schema_changes: Columns added, removed or retyped.
        rows: Row changes.
        shift: Distribution shift per shared column (old version as the reference).
        skipped: Shared columns not checked for shift, with the reason.
        n_drifted: Columns whose shift the drift check calls drift.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    old: str
    new: str
    old_rows: int
    new_rows: int
    schema_changes: list[ColumnChange]
    rows: RowChanges
    shift: dict[str, FeatureDrift]
    skipped: dict[str, str] = Field(default_factory=dict)
    n_drifted: int = 0

    @property
    def identical(self) -> bool:
        """Same schema and the same rows."""
        r = self.rows
        return not self.schema_changes and r.added == r.removed == (r.changed or 0) == 0


# -- finding versions -----------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str, str]:
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or not all(parts):
        raise DataError(
            f"{name!r} names no data set: use PIPELINE.STEP.OUTPUT@VERSION "
            "(e.g. lifecycle.ingest.data@v1) or a path to CSV or Parquet files"
        )
    return parts[0], parts[1], parts[2]


def dataset_versions(store: Store, name: str, *, limit: int = 10_000) -> list[DatasetRef]:
    """The distinct values a step output took over the recorded runs, oldest first.

    Args:
        store: The metadata store.
        name: ``PIPELINE.STEP.OUTPUT``.
        limit: Most recent pipeline runs looked at.

    Raises:
        DataError: The name is not of that form.
    """
    pipeline, step, output = _split_name(name)
    runs = store.runs.list(kind="pipeline", name=pipeline, limit=limit)
    seen: dict[str, DatasetRef] = {}
    for run in sorted(runs, key=lambda r: (r.started_at, r.id)):
        for info in store.steps.list(run.id):
            digest = info.outputs.get(output)
            if info.name != step or info.status not in _OK or digest is None:
                continue
            if str(digest) not in seen:
                seen[str(digest)] = DatasetRef(
                    name=name,
                    version=len(seen) + 1,
                    digest=str(digest),
                    run_id=run.id,
                    created_at=run.started_at,
                )
    return list(seen.values())


def _pick(versions: list[DatasetRef], name: str, ref: str) -> DatasetRef:
    if not versions:
        raise NotFoundError(
            f"no recorded versions of {name}: no finished run of pipeline "
            f"'{name.rsplit('.', 2)[0]}' has that step output"
        )
    known = f"it has v1 … v{len(versions)}"
    if ref == "latest":
        return versions[-1]
    if ref == "previous":
        if len(versions) < 2:
            raise NotFoundError(f"{name} has one version only, so no previous one")
        return versions[-2]
    number = _VERSION.match(ref)
    if number is not None:
        n = int(number.group(1))
        if not 1 <= n <= len(versions):
            raise NotFoundError(f"{name} has no version v{n}; {known}")
        return versions[n - 1]
    if _DIGEST.match(ref):
        prefix = ref if ref.startswith("sha256:") else f"sha256:{ref}"
        hits = [v for v in versions if v.digest.startswith(prefix)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DataError(f"{ref!r} is the start of {len(hits)} versions of {name}; give more")
        raise NotFoundError(f"no version of {name} has a digest starting {ref!r}; {known}")
    raise DataError(
        f"{ref!r} is no version: use vN (1 … {len(versions)}), latest, previous or a digest prefix"
    )


def load_dataset(
    spec: str, *, store: Store | None, artifacts: ArtifactStore | None, base_dir: Path
) -> tuple[str, pd.DataFrame]:
    """The label and data of ``NAME@REF``, or of a path or glob of CSV or Parquet files.

    Args:
        spec: What to load.
        store: The metadata store versions are looked up in (needed for ``NAME@REF``).
        artifacts: The artifact store holding them (likewise).
        base_dir: The folder relative paths are relative to.

    Raises:
        DataError: The spec names neither, or the version is not a DataFrame.
        NotFoundError: No such version.
    """
    if "@" not in spec:
        return spec, read_source(spec, base_dir=base_dir)
    if store is None or artifacts is None:
        raise DataError(f"{spec}: looking a version up needs the metadata and artifact stores")
    name, _, ref = spec.rpartition("@")
    version = _pick(dataset_versions(store, name), name, ref.strip())
    value = load_value(version.digest, artifacts)
    if not isinstance(value, pd.DataFrame):
        raise DataError(
            f"{version.label} is a {type(value).__name__}, not a table: diff compares DataFrames"
        )
    return version.label, value


# -- comparing ------------------------------------------------------------------------------


def diff_frames(
    old: pd.DataFrame,
    new: pd.DataFrame,
    *,
    key: Sequence[str] = (),
    old_label: str = "old",
    new_label: str = "new",
    thresholds: DriftThresholds | None = None,
) -> DataDiff:
    """Compare two versions of a data set.

    Args:
        old: The earlier version (the reference of the shift check).
        new: The later version.
        key: Columns that identify a row in both; without, rows are compared whole.
        old_label: How the old version is named in the result.
        new_label: How the new version is named.
        thresholds: Drift thresholds for the shift check (the monitoring defaults if None).

    Raises:
        DataError: A key column is missing from a version, or a key repeats within one.
    """
    old = _named(old, old_label)
    new = _named(new, new_label)
    schema = _schema_changes(old, new)
    shared = [c for c in old.columns if c in new.columns]
    keys = list(dict.fromkeys(key))
    for column in keys:
        for label, frame in ((old_label, old), (new_label, new)):
            if column not in frame.columns:
                raise DataError(
                    f"key column '{column}' is not in {label}; its columns: "
                    f"{', '.join(map(str, frame.columns))}"
                )
    values = [c for c in shared if c not in keys]
    rows = (
        _keyed_rows(old, new, keys, values, old_label, new_label)
        if keys
        else _whole_rows(old, new, shared)
    )
    shift, skipped = _shift(old, new, values, thresholds)
    return DataDiff(
        old=old_label,
        new=new_label,
        old_rows=len(old),
        new_rows=len(new),
        schema_changes=schema,
        rows=rows,
        shift=shift,
        skipped=skipped,
        n_drifted=sum(f.drift_detected for f in shift.values()),
    )


def _named(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise DataError(f"{label} has duplicate column names")
    return frame.set_axis(names, axis=1).reset_index(drop=True)


def _schema_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[ColumnChange]:
    changes = [
        ColumnChange(column=c, change="removed", old_type=str(old[c].dtype))
        for c in old.columns
        if c not in new.columns
    ]
    changes += [
        ColumnChange(column=c, change="added", new_type=str(new[c].dtype))
        for c in new.columns
        if c not in old.columns
    ]
    changes += [
        ColumnChange(
            column=c, change="type", old_type=str(old[c].dtype), new_type=str(new[c].dtype)
        )
        for c in old.columns
        if c in new.columns and str(old[c].dtype) != str(new[c].dtype)
    ]
    return changes


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars and timestamps as Python values)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _keyed_rows(
    old: pd.DataFrame,
    new: pd.DataFrame,
    keys: list[str],
    values: list[str],
    old_label: str,
    new_label: str,
) -> RowChanges:
    for label, frame in ((old_label, old), (new_label, new)):
        repeated = frame.duplicated(keys, keep=False)
        if repeated.any():
            example = _plain(tuple(frame.loc[repeated, keys].iloc[0]))
            raise DataError(
                f"key {', '.join(keys)} is not unique in {label}: {int(repeated.sum())} rows "
                f"share a key (e.g. {example})",
                hint="choose columns that identify one row, or leave --key out",
            )
    a = old.set_index(keys)
    b = new.set_index(keys)
    added = b.index.difference(a.index, sort=False)
    removed = a.index.difference(b.index, sort=False)
    both = a.index.intersection(b.index, sort=False)
    a_both = a.loc[both, values]
    b_both = b.loc[both, values]
    differs = pd.DataFrame(False, index=both, columns=values)
    for column in values:
        x = a_both[column].astype(object)
        y = b_both[column].astype(object)
        same = (x == y) | (x.isna() & y.isna())
        differs[column] = ~same.to_numpy(dtype=bool)
    changed_rows = differs.any(axis=1)
    examples: list[dict[str, Any]] = []
    for label in both[changed_rows.to_numpy()][:_EXAMPLES]:
        for column in values:
            if differs.at[label, column]:
                examples.append(
                    {
                        "key": _plain(label),
                        "column": column,
                        "old": _plain(a_both.at[label, column]),
                        "new": _plain(b_both.at[label, column]),
                    }
                )
                break
    return RowChanges(
        key=keys,
        added=len(added),
        removed=len(removed),
        changed=int(changed_rows.sum()),
        unchanged=int((~changed_rows).sum()),
        changed_by_column={c: int(differs[c].sum()) for c in values if differs[c].any()},
        added_keys=[_plain(k) for k in added[:_EXAMPLES]],
        removed_keys=[_plain(k) for k in removed[:_EXAMPLES]],
        changed_examples=examples,
    )


def _whole_rows(old: pd.DataFrame, new: pd.DataFrame, shared: list[str]) -> RowChanges:
    # Rows as multisets of their values in the shared columns: pandas hashes each row.
    if not shared:
        return RowChanges(key=[], added=len(new), removed=len(old), changed=None, unchanged=0)
    a = Counter(pd.util.hash_pandas_object(old[shared].astype(object), index=False).tolist())
    b = Counter(pd.util.hash_pandas_object(new[shared].astype(object), index=False).tolist())
    common = sum((a & b).values())
    return RowChanges(
        key=[],
        added=len(new) - common,
        removed=len(old) - common,
        changed=None,
        unchanged=common,
    )


def _shift(
    old: pd.DataFrame,
    new: pd.DataFrame,
    columns: list[str],
    thresholds: DriftThresholds | None,
) -> tuple[dict[str, FeatureDrift], dict[str, str]]:
    if not columns:
        return {}, {}
    if len(old) == 0 or len(new) == 0:
        which = "old" if len(old) == 0 else "new"
        return {}, dict.fromkeys(columns, f"the {which} version has no rows")
    try:
        profile = build_reference_profile(old[columns])
        result = compute_drift(profile, new[columns], thresholds=thresholds)
    except MonitorError as exc:
        return {}, dict.fromkeys(columns, exc.message)
    return dict(result.features), dict(profile.skipped)
