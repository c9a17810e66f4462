"""Prediction and feedback sinks that write into the metadata store, where monitors read them.

The server hands each sink a batch from its writer thread; one batch is one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from opsloop.serve.base import FeedbackRecord, FeedbackTarget, PredictionRecord
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
    """

    def __init__(self, store: Store, deployment: str = "", dead_letter: Path | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.dead_letter = dead_letter

    def write_batch(self, records: list[PredictionRecord]) -> None:
        """Insert the batch in one transaction."""
        self.store.log_predictions(
            [
                {
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
                }
                for r in records
            ]
        )


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
        found = self.store.feedback_targets(request_ids, deployment=self.deployment)
        return {
            rid: FeedbackTarget(t.model or "", t.version or "", t.rows, t.labelled)
            for rid, t in found.items()
        }

    def write_batch(self, records: list[FeedbackRecord]) -> None:
        """Insert the batch in one transaction; a second label for a request is refused."""
        refused = self.store.log_feedback(
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
