"""Prediction and feedback sinks that write into the metadata store, where monitors read them.

The server hands each sink a batch from its writer thread; one batch is one transaction.

A request of more rows than the prediction log's ``max_inline_rows`` (``opsloop.yaml``
``monitoring.prediction_log``) is logged by its ``large_requests`` policy instead of as one
huge row: ``reference`` writes its rows to the artifact store as a Parquet chunk
(:mod:`opsloop.store.prediction_chunks`) and the row keeps the chunk's digest, row count and
columns; ``sample`` keeps a seeded random sample of ``sample_rows`` rows inline with their
positions and the total; ``drop`` keeps the counts only.

Columns a request sent beyond the model's signature (ids, timestamps …) go to the row's
``ids``, so labels can be joined by them: all of them for a request kept inline, those of the
sampled rows under ``sample``, none under ``reference`` and ``drop``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.serve.base import FeedbackRecord, FeedbackTarget, PredictionRecord
from opsloop.spec.schema import PredictionLogSection
from opsloop.store.prediction_chunks import write_chunk

if TYPE_CHECKING:
    from pathlib import Path

    from opsloop.artifacts import ArtifactStore
    from opsloop.store import Store

logger = logging.getLogger("opsloop.serve")


def _plain(value: Any) -> Any:
    """JSON-safe values: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class StorePredictionSink:
    """Writes prediction records to the store's ``predictions`` table.

    Args:
        store: The metadata store.
        deployment: Deployment name recorded on every row (empty outside GitOps).
        dead_letter: JSON Lines file for records the store refuses (see
            :class:`~opsloop.serve.predlog.RecordLog`); None logs them instead.
        artifacts: Where the chunks of large requests go under the ``reference`` policy;
            without one, large requests are sampled instead.
        policy: How large requests are logged (default: ``reference`` above 1,000 rows).
    """

    def __init__(
        self,
        store: Store,
        deployment: str = "",
        dead_letter: Path | None = None,
        *,
        artifacts: ArtifactStore | None = None,
        policy: PredictionLogSection | None = None,
    ) -> None:
        self.store = store
        self.deployment = deployment
        self.dead_letter = dead_letter
        self.artifacts = artifacts
        self.policy = policy if policy is not None else PredictionLogSection()
        self.large = self.policy.large_requests
        if self.large == "reference" and artifacts is None:
            if policy is not None:
                logger.warning(
                    "prediction log: no artifact store for the chunks of large requests; "
                    "they are sampled (%d rows each) instead",
                    self.policy.sample_size,
                )
            self.large = "sample"
        # Read once: the test below runs for every record of every batch.
        self._max_inline = self.policy.max_inline_rows

    def write_batch(self, records: list[PredictionRecord]) -> None:
        """Insert the batch in one transaction (after writing the chunks of large requests)."""
        limit = self._max_inline
        self.store.predictions.log(
            [self._row(r) if len(r.outputs) <= limit else self._large_row(r) for r in records]
        )

    def _row(self, r: PredictionRecord) -> dict[str, Any]:
        return {
            "request_id": r.request_id,
            "deployment": self.deployment,
            "model_name": r.model,
            "model_version": str(r.version),
            "time": r.timestamp,
            "latency_ms": float(r.latency_ms),
            "shadow": bool(r.shadow),
            "inputs": _plain(r.inputs),
            "outputs": {"values": _plain(r.outputs)}
            | ({"agreed": r.agreed} if r.agreed is not None else {}),
            "rows": len(r.outputs),
            "chunk": None,
            "ids": _plain(r.ids) if r.ids else None,
        }

    def _large_row(self, r: PredictionRecord) -> dict[str, Any]:
        """The row of a request above ``max_inline_rows``, by the policy."""
        n = len(r.outputs)
        log: dict[str, Any] = {"policy": self.large, "columns": [str(c) for c in r.inputs]}
        inputs: dict[str, Any] = {}
        values: list[Any] = []
        ids: dict[str, Any] | None = None
        chunk = None
        if self.large == "reference":
            assert self.artifacts is not None  # see __init__
            ref = write_chunk(
                self.artifacts,
                request_id=r.request_id,
                model=r.model,
                version=str(r.version),
                inputs=r.inputs,
                outputs=r.outputs,
            )
            chunk = ref.digest
            log["bytes"] = ref.size
        elif self.large == "sample":
            seed = self.policy.seed
            # Seeded per request, so every request samples other positions, reproducibly.
            rng = np.random.default_rng([seed, zlib.crc32(r.request_id.encode())])
            k = min(self.policy.sample_size, n)
            index = np.sort(rng.choice(n, size=k, replace=False)).tolist()
            inputs = {
                str(name): [_plain(column[i]) for i in index] for name, column in r.inputs.items()
            }
            values = [_plain(r.outputs[i]) for i in index]
            if r.ids:
                ids = {
                    str(name): [_plain(column[i]) for i in index] for name, column in r.ids.items()
                }
            log |= {"seed": seed, "index": index}
        logger.debug(
            "prediction log: request %s of %d rows logged by policy %s", r.request_id, n, self.large
        )
        return {
            "request_id": r.request_id,
            "deployment": self.deployment,
            "model_name": r.model,
            "model_version": str(r.version),
            "time": r.timestamp,
            "latency_ms": float(r.latency_ms),
            "shadow": bool(r.shadow),
            "inputs": inputs,
            "outputs": {"values": values, "log": log}
            | ({"agreed": r.agreed} if r.agreed is not None else {}),
            "rows": n,
            "chunk": chunk,
            "ids": ids,
        }


class StoreFeedbackSink:
    """Writes feedback labels to the store's ``feedback`` table (arguments as for
    :class:`StorePredictionSink`).

    It also answers the server's ``lookup``: requests answered before the server's memory of
    them (or before a restart) get their label when the store logged their prediction, and
    a request the store holds a label for gets no second one.
    """

    def __init__(self, store: Store, deployment: str = "", dead_letter: Path | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.dead_letter = dead_letter

    def lookup(self, request_ids: Sequence[str]) -> dict[str, FeedbackTarget]:
        """What the store knows of these requests of this deployment."""
        found = self.store.predictions.feedback_targets(request_ids, deployment=self.deployment)
        return {
            rid: FeedbackTarget(t.model or "", t.version or "", t.rows, t.labelled)
            for rid, t in found.items()
        }

    def write_batch(self, records: list[FeedbackRecord]) -> None:
        """Insert the batch in one transaction; a second label for a request is refused."""
        refused = self.store.predictions.log_feedback(
            [
                {
                    "request_id": r.request_id,
                    "deployment": self.deployment,
                    "time": r.timestamp,
                    "label": {"value": _plain(r.label)},
                }
                for r in records
            ]
        )
        if refused:
            # The server refuses these before they are queued; only a race with another
            # replica of the deployment gets here, and the first label stands.
            logger.warning(
                "feedback: %d label(s) refused, their request already has one: %s",
                len(refused),
                ", ".join(refused[:10]),
            )
