"""Contracts of the model server: what a servable model is, what gets logged, where it goes.

The server never imports a model registry or a metadata store. It takes models through
:class:`ServableModel` and writes prediction and feedback records through
:class:`PredictionSink` / :class:`FeedbackSink`, so other packages can plug in without the
server knowing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from opsloop.errors import ServingError
from opsloop.registry.signature import (
    SUPPORTED_DTYPES,
    ColumnSpec,
    signature_from_frame,
)

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

__all__ = [
    "SUPPORTED_DTYPES",
    "ColumnSpec",
    "ColumnsView",
    "FeedbackRecord",
    "FeedbackSink",
    "FeedbackTarget",
    "PiiColumnsView",
    "PredictionRecord",
    "PredictionSink",
    "ServableModel",
    "SklearnServable",
    "hash_value",
    "signature_from_frame",
]


@runtime_checkable
class ServableModel(Protocol):
    """A loaded model version the server can answer with.

    ``predict`` returns class probabilities with shape ``(n, k)`` for classifiers that have
    them, else predictions with shape ``(n,)``. It is called with a DataFrame whose columns
    follow ``signature`` in order and have its dtypes, possibly from another thread.

    Three attributes are read when present: ``input_example`` (a DataFrame whose first row
    is used for the warm-up predict instead of a synthetic row), ``classes`` (the class
    labels, in the order of the probability columns: a classifier then answers with labels
    unless probabilities are asked for) and ``output_name`` (the V2 name of the output
    ``predict`` returns; default ``predict_proba`` for 2-D outputs, else ``predict``, as
    MLServer's scikit-learn runtime names them).
    """

    name: str
    version: str
    signature: list[ColumnSpec]

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predict for every row of ``df``."""
        ...


class SklearnServable:
    """Serve any fitted scikit-learn estimator or pipeline.

    Args:
        name: Model name.
        version: Model version.
        estimator: A fitted estimator; it receives a DataFrame with the signature's columns.
        signature: Input columns, in order.
        output: ``"proba"`` to answer with ``predict_proba``, ``"predict"`` for ``predict``,
            ``"auto"`` for ``predict_proba`` when the estimator has it.
        input_example: Rows like the training data, used to warm the model up (a synthetic
            row of zeros and empty strings may be refused by strict encoders).
    """

    def __init__(
        self,
        name: str,
        version: str,
        estimator: Any,
        signature: Sequence[ColumnSpec],
        output: Literal["auto", "proba", "predict"] = "auto",
        input_example: pd.DataFrame | None = None,
    ) -> None:
        if not signature:
            raise ServingError(f"model '{name}' version '{version}': the signature is empty")
        has_proba = hasattr(estimator, "predict_proba")
        if output == "proba" and not has_proba:
            raise ServingError(
                f"model '{name}' version '{version}': output='proba' but "
                f"{type(estimator).__name__} has no predict_proba"
            )
        self.name = name
        self.version = str(version)
        self.signature = list(signature)
        self.estimator = estimator
        self.input_example = input_example
        self.output = (
            "proba" if output == "proba" or (output == "auto" and has_proba) else "predict"
        )
        classes = getattr(estimator, "classes_", None)
        self.classes: list[Any] | None = None if classes is None else list(classes)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predict for every row of ``df`` (probabilities or predictions, see ``output``)."""
        if self.output == "proba":
            return np.asarray(self.estimator.predict_proba(df))
        return np.asarray(self.estimator.predict(df))

    def __repr__(self) -> str:
        return f"SklearnServable({self.name!r}, {self.version!r}, {type(self.estimator).__name__})"


class ColumnsView(Mapping[str, list[Any]]):
    """Request inputs as ``{column: [values]}``, built on first access.

    The server keeps a request's values as it decoded them (row-major for single-dtype
    numeric signatures); the per-column lists are only built when a sink reads them, in the
    log writer's thread rather than on the request path.

    Args:
        names: Column names, in order.
        data: One list per column, or None when ``flat`` holds the values.
        flat: Row-major values, ``len(names)`` per row.
    """

    __slots__ = ("_cols", "_data", "_flat", "_names")

    def __init__(
        self,
        names: Sequence[str],
        data: list[list[Any]] | None = None,
        flat: list[Any] | None = None,
    ) -> None:
        self._names = names
        self._data = data
        self._flat = flat
        self._cols: dict[str, list[Any]] | None = None

    def _columns(self) -> dict[str, list[Any]]:
        if self._cols is None:
            names = self._names
            if self._data is not None:
                self._cols = dict(zip(names, self._data, strict=True))
            else:
                flat = self._flat or []
                width = len(names)
                self._cols = {name: flat[j::width] for j, name in enumerate(names)}
        return self._cols

    def __getitem__(self, key: str) -> list[Any]:
        return self._columns()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return repr(self._columns())


def hash_value(value: object, salt: bytes) -> str | None:
    """``sha256:`` and the hex SHA-256 of the salt and the value's text; None stays None."""
    if value is None:
        return None
    return "sha256:" + hashlib.sha256(salt + str(value).encode("utf-8")).hexdigest()


class PiiColumnsView(Mapping[str, list[Any]]):
    """Columns as the prediction log keeps them: personal-data columns hashed (salted
    SHA-256, ``sha256:<hex>``) or left out, the others as they are; built on first access,
    in the log writer's thread.

    Args:
        columns: The request's columns.
        pii: Names of the personal-data columns.
        policy: ``hash`` or ``drop`` (``keep`` needs no view).
        salt: The project's salt (for ``hash``).
    """

    __slots__ = ("_base", "_cols", "_pii", "_policy", "_salt")

    def __init__(
        self,
        columns: Mapping[str, list[Any]],
        pii: frozenset[str],
        policy: Literal["hash", "drop"],
        salt: bytes,
    ) -> None:
        self._base = columns
        self._pii = pii
        self._policy = policy
        self._salt = salt
        self._cols: dict[str, list[Any]] | None = None

    def _columns(self) -> dict[str, list[Any]]:
        if self._cols is None:
            out: dict[str, list[Any]] = {}
            for name, values in self._base.items():
                if name not in self._pii:
                    out[name] = values
                elif self._policy == "hash":
                    out[name] = [hash_value(v, self._salt) for v in values]
            self._cols = out
        return self._cols

    def __getitem__(self, key: str) -> list[Any]:
        return self._columns()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns())

    def __len__(self) -> int:
        return len(self._columns())

    def __repr__(self) -> str:
        return repr(self._columns())


@dataclass(slots=True)
class PredictionRecord:
    """One answered request, as written to the prediction log.

    Attributes:
        request_id: The ``x-request-id`` the request came with, or the one generated for it.
        model: Model name.
        version: Model version that answered (or, for ``shadow=True``, that shadowed).
        inputs: Input columns, ``{column: [values]}``.
        outputs: Model outputs, one entry per row: what ``predict`` returned (class
            probabilities for a classifier), whatever the client asked to be answered.
        latency_ms: Time from the request's arrival to its answer.
        timestamp: When the request arrived (UTC).
        shadow: True for the answer of a shadow version, which was never returned.
        agreed: For shadow records, whether the shadow agreed with the answer returned.
        deployment: The deployment the server runs for, when it was given one.
        ids: Columns the request sent beyond the model's signature (ids, timestamps …),
            ``{column: [values]}``: not predicted with, kept so labels can be joined by them.
    """

    request_id: str
    model: str
    version: str
    inputs: Mapping[str, list[Any]]
    outputs: list[Any]
    latency_ms: float
    timestamp: dt.datetime
    shadow: bool = False
    agreed: bool | None = None
    deployment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ids: Mapping[str, list[Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the record."""
        return {
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "inputs": self.inputs if isinstance(self.inputs, dict) else dict(self.inputs),
            "outputs": self.outputs,
            "latency_ms": self.latency_ms,
            "timestamp": self.timestamp.isoformat(),
            "shadow": self.shadow,
            "agreed": self.agreed,
            "deployment": self.deployment,
            **({"extra": self.extra} if self.extra else {}),
            **({"ids": dict(self.ids)} if self.ids else {}),
        }


@dataclass(slots=True)
class FeedbackRecord:
    """A ground-truth label for a request answered earlier.

    Attributes:
        request_id: The request id the label belongs to.
        label: The true label or value.
        timestamp: When the label was received (UTC).
        model: Model name, if the client named it.
        deployment: The deployment the server runs for, when it was given one.
    """

    request_id: str
    label: Any
    timestamp: dt.datetime
    model: str | None = None
    deployment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the record."""
        return {
            "request_id": self.request_id,
            "label": self.label,
            "timestamp": self.timestamp.isoformat(),
            "model": self.model,
            "deployment": self.deployment,
        }


@runtime_checkable
class PredictionSink(Protocol):
    """Where prediction records go. Called from a writer thread, one batch at a time.

    A sink may also offer ``encode(records) -> bytes`` and ``write_bytes(data)``: the server
    then encodes on its event loop in small slices and only writes in the thread, which keeps
    CPU-bound encoding from stalling requests (see :class:`opsloop.serve.JsonlSink`).
    """

    def write_batch(self, records: list[PredictionRecord]) -> None:
        """Persist ``records``; raise to signal the batch was not written."""
        ...


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """What a feedback sink knows of an earlier request a label is sent for.

    Attributes:
        model: Model name that answered it.
        version: Model version that answered it.
        rows: Rows the request had (a label per row, or one label for one row).
        labelled: Whether the request has a label already.
    """

    model: str
    version: str
    rows: int
    labelled: bool = False


@runtime_checkable
class FeedbackSink(Protocol):
    """Where feedback records go. Called from a writer thread, one batch at a time.

    A sink may also offer ``lookup(request_ids) -> Mapping[str, FeedbackTarget]``: the
    server then accepts labels for requests it no longer remembers (answered long ago, or
    before a restart) when the sink knows them, and refuses a second label for a request the
    sink already holds one for (see :class:`opsloop.serve.store_sink.StoreFeedbackSink`).
    """

    def write_batch(self, records: list[FeedbackRecord]) -> None:
        """Persist ``records``; raise to signal the batch was not written."""
        ...
