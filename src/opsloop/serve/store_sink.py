"""Prediction and feedback sinks that write into the metadata store, where monitors read them.

The server hands each sink a batch from its writer thread; one batch is one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from opsloop.serve.base import FeedbackRecord, PredictionRecord
from opsloop.store import Store


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
    :class:`StorePredictionSink`)."""

    def __init__(self, store: Store, deployment: str = "", dead_letter: Path | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.dead_letter = dead_letter

    def write_batch(self, records: list[FeedbackRecord]) -> None:
        """Insert the batch in one transaction."""
        self.store.log_feedback(
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
