"""Retention of the prediction log: the oldest requests go, by age and by count, never before
the monitors have read them.

The policy is ``opsloop.yaml``'s ``monitoring.prediction_log.retention`` (``max_age_days``;
``max_rows``: rows predicted by the requests in the log, shadow answers included, a request
counting with all its rows even when they are kept in a chunk, so the limit bounds the chunks'
volume too; ``null`` turns a limit off).
:func:`prune_pass` applies it once; ``opsloop up`` runs it after every monitor pass and
``opsloop monitor prune`` on demand.

* Nothing a monitor has yet to read is deleted: a deployment's requests go only before the end
  of its last monitored window (:func:`~opsloop.monitor.service.monitored_until`); for a
  deployment never monitored, only those older than a first monitor run would read
  (:data:`~opsloop.monitor.service.DEFAULT_BACKFILL` and a day). When the log holds more than
  ``max_rows`` and the rest has not been monitored yet, it is kept, and the result says so.
* Requests are deleted oldest first, in transactions of ``batch_size`` requests, so a pass
  never holds the store's write lock for long; the model servers' writes go in between.
* A deleted request takes its labels along (those that arrived before the monitors' mark,
  unless a request of the same id is left), and labels older than ``max_age_days`` go too.
* The Parquet chunks of deleted large requests are deleted from the artifact store once no
  request references them (and only blobs whose Parquet footer marks them as chunks). A chunk
  whose request never reached the store (the store refused the batch) is not found this way
  and stays.

Quality is measured when a label arrives: a label that arrives after its request was deleted
is not scored, so ``max_age_days`` should be longer than labels take to come back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsloop.errors import NotFoundError, OpsloopError
from opsloop.monitor.service import DEFAULT_BACKFILL, monitored_until
from opsloop.spec.schema import RetentionSection
from opsloop.store.prediction_chunks import is_chunk

if TYPE_CHECKING:
    from opsloop.artifacts import ArtifactStore
    from opsloop.context import Project
    from opsloop.store import Store

__all__ = ["PruneResult", "prune_pass", "prune_predictions"]

logger = logging.getLogger("opsloop.monitor")

# A first monitor run starts up to one window before its backfill; windows are at most a day
# in practice.
_FIRST_RUN_MARGIN = timedelta(days=1)


@dataclass
class PruneResult:
    """What a retention pass deleted.

    Attributes:
        predictions: Requests deleted.
        rows: Rows those requests held.
        feedback: Labels deleted.
        chunks: Chunks deleted from the artifact store.
        batches: Delete transactions.
        kept_over_limit: Rows above ``max_rows`` kept because the monitors have not read
            them yet.
        horizons: Per deployment, the time before which its requests may go.
        notes: What could not be done, and why.
    """

    predictions: int = 0
    rows: int = 0
    feedback: int = 0
    chunks: int = 0
    batches: int = 0
    kept_over_limit: int = 0
    horizons: dict[str, datetime] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def prune_predictions(
    store: Store,
    artifacts: ArtifactStore | None,
    retention: RetentionSection,
    *,
    now: datetime | None = None,
    backfill: timedelta = DEFAULT_BACKFILL,
) -> PruneResult:
    """Delete the oldest requests of the prediction log as ``retention`` says (see the module
    description).

    Args:
        store: The metadata store.
        artifacts: The artifact store holding the chunks of large requests; None leaves
            them in place.
        retention: The policy.
        now: The time of the pass (default: now).
        backfill: How far back a deployment's first monitor run starts.

    Returns:
        What was deleted and what was kept over the limit.
    """
    now = now if now is not None else datetime.now(UTC)
    result = PruneResult()
    for name in store.predictions.deployments():
        cursor = monitored_until(store, name)
        result.horizons[name] = cursor if cursor is not None else now - backfill - _FIRST_RUN_MARGIN
    batch = retention.batch_size
    if retention.max_age_days is not None:
        cutoff = now - timedelta(days=retention.max_age_days)
        for name, horizon in result.horizons.items():
            before = min(cutoff, horizon)
            while True:
                oldest = store.predictions.oldest(name, before, batch)
                if not oldest:
                    break
                done = _delete(store, artifacts, name, [i for _, i, _ in oldest], horizon, result)
                if len(oldest) < batch or done == 0:
                    break
            while True:
                # Labels whose request is gone already (or never came).
                done = store.predictions.delete_feedback_before(name, before, batch)
                result.feedback += done
                result.batches += 1
                if done < batch:
                    break
    if retention.max_rows is not None:
        _prune_count(store, artifacts, retention.max_rows, batch, result)
    if result.predictions or result.feedback:
        logger.info(
            "prediction log retention: deleted %d request(s), %d label(s), %d chunk(s)",
            result.predictions,
            result.feedback,
            result.chunks,
        )
        store.events.emit(
            "predictions.pruned",
            "prediction_log",
            "predictions",
            {
                "predictions": result.predictions,
                "rows": result.rows,
                "feedback": result.feedback,
                "chunks": result.chunks,
                "max_age_days": retention.max_age_days,
                "max_rows": retention.max_rows,
            },
        )
    return result


def _prune_count(
    store: Store,
    artifacts: ArtifactStore | None,
    max_rows: int,
    batch: int,
    result: PruneResult,
) -> None:
    """Delete the oldest requests, whatever their deployment, until their rows are down to
    ``max_rows``."""
    excess = store.predictions.count_rows() - max_rows
    while excess > 0:
        candidates = [
            (when, pid, rows, name)
            for name, horizon in result.horizons.items()
            for when, pid, rows in store.predictions.oldest(name, horizon, batch)
        ]
        if not candidates:
            result.kept_over_limit = excess
            message = (
                f"the prediction log holds {excess} row(s) over max_rows={max_rows} that the "
                "monitors have not read yet; they are kept until a monitor pass reads them"
            )
            logger.warning("%s", message)
            result.notes.append(message)
            return
        candidates.sort()
        chosen: dict[str, list[int]] = {}
        covered = 0
        for _, pid, rows, name in candidates[:batch]:
            if covered >= excess:
                break
            chosen.setdefault(name, []).append(pid)
            covered += rows
        done = sum(
            _delete(store, artifacts, name, ids, result.horizons[name], result)
            for name, ids in chosen.items()
        )
        if done == 0:
            # Someone else deleted them meanwhile: count again next pass.
            return
        excess -= done


def _delete(
    store: Store,
    artifacts: ArtifactStore | None,
    deployment: str,
    ids: list[int],
    horizon: datetime,
    result: PruneResult,
) -> int:
    """Delete one batch of requests (one transaction), then the chunks left unreferenced;
    how many rows the requests held."""
    deleted = store.predictions.delete(deployment, ids, feedback_before=horizon)
    result.batches += 1
    result.predictions += deleted.predictions
    result.rows += deleted.rows
    result.feedback += deleted.feedback
    if deleted.chunks:
        _collect(store, artifacts, deleted.chunks, result)
    return deleted.rows


def _collect(
    store: Store, artifacts: ArtifactStore | None, digests: set[str], result: PruneResult
) -> None:
    """Delete the chunks among ``digests`` that no request references any more."""
    unreferenced = sorted(digests - store.predictions.referenced_chunks(digests))
    if not unreferenced:
        return
    if artifacts is None:
        _note(result, f"{len(unreferenced)} chunk(s) stay: no artifact store was given")
        return
    for digest in unreferenced:
        try:
            if not is_chunk(artifacts, digest):
                _note(result, f"{digest} of a deleted request is no prediction chunk; kept")
                continue
            if artifacts.delete(digest):
                result.chunks += 1
        except NotFoundError:
            continue
        except OpsloopError as exc:
            _note(result, f"chunk {digest} of a deleted request stays: {exc}")


def _note(result: PruneResult, text: str) -> None:
    if text not in result.notes:
        logger.warning("%s", text)
        result.notes.append(text)


def prune_pass(project: Project, *, now: datetime | None = None) -> PruneResult:
    """One retention pass over a project: :func:`prune_predictions` with its stores and the
    ``monitoring.prediction_log.retention`` of its ``opsloop.yaml`` (the defaults without
    one)."""
    retention = (
        project.spec.monitoring.prediction_log.retention
        if project.spec is not None
        else RetentionSection()
    )
    return prune_predictions(project.store, project.artifacts, retention, now=now)
