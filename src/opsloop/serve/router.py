"""Model versions inside one server: loading, warm-up, weighted canary and shadow routing.

Routing state is replaced whole (never mutated in place) so a request always sees one
consistent table; a version is warmed before it can be routed to, and a failed load leaves
the serving versions untouched.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import NotFoundError, ServingError
from opsloop.serve.base import ServableModel
from opsloop.serve.batching import MicroBatcher, synthetic_columns
from opsloop.serve.codec import Schema, v2_datatype_for, v2_input_datatype
from opsloop.serve.feedback import LabelSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from opsloop.serve.metrics import ServerMetrics

__all__ = ["LABEL_OUTPUT", "ModelEntry", "ModelRouter", "VersionSlot"]


#: The V2 output of a classifier's class labels (MLServer's scikit-learn runtime's name).
LABEL_OUTPUT = "predict"


@dataclass(slots=True)
class VersionSlot:
    """One loaded, warmed model version and its batcher.

    Attributes:
        output_name: The V2 name of what ``predict`` returns.
        classes: The class labels of a classifier whose output is their probabilities (it
            answers with labels by default, as scikit-learn's ``predict``); None otherwise.
    """

    model: ServableModel
    batcher: MicroBatcher
    output_name: str
    output_datatype: str
    output_shape: list[int]
    labels: LabelSpec
    classes: np.ndarray | None = None
    children: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        """The V2 outputs this version answers with; the first is its default."""
        if self.classes is None:
            return [self.output_name]
        return [LABEL_OUTPUT, self.output_name]

    def has_labels(self, result: np.ndarray) -> bool:
        """Whether ``result`` holds class probabilities labels can be read from."""
        classes = self.classes
        return classes is not None and result.ndim == 2 and result.shape[1] == len(classes)

    def class_labels(self, result: np.ndarray) -> np.ndarray:
        """The most probable class of each row of ``result`` (see :meth:`has_labels`).

        The class of highest probability, which is what scikit-learn's ``predict`` answers
        for classifiers whose probabilities decide their class; it keeps the label returned
        consistent with the probabilities logged.
        """
        assert self.classes is not None
        labels: np.ndarray = self.classes[result.argmax(axis=1)]
        return labels

    @property
    def schema(self) -> Schema:
        """The signature, prepared for decoding."""
        return self.batcher.frames.schema

    @property
    def name(self) -> str:
        """Model name."""
        return self.model.name

    @property
    def version(self) -> str:
        """Model version."""
        return str(self.model.version)

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """V2 model metadata."""
        return {
            "name": self.name,
            "versions": versions,
            "platform": "opsloop",
            "inputs": [
                {"name": spec.name, "datatype": v2_input_datatype(spec), "shape": [-1]}
                for spec in self.model.signature
            ],
            "outputs": [
                *(
                    [
                        {
                            "name": LABEL_OUTPUT,
                            "datatype": v2_datatype_for(self.classes),
                            "shape": [-1],
                        }
                    ]
                    if self.classes is not None
                    else []
                ),
                {
                    "name": self.output_name,
                    "datatype": self.output_datatype,
                    "shape": self.output_shape,
                },
            ],
        }


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """The versions of one model and how traffic is split between them."""

    name: str
    versions: Mapping[str, VersionSlot]
    weights: Mapping[str, float]
    shadows: tuple[str, ...] = ()
    _cumulative: tuple[tuple[float, str], ...] = ()

    @classmethod
    def build(
        cls,
        name: str,
        versions: Mapping[str, VersionSlot],
        weights: Mapping[str, float],
        shadows: Sequence[str] = (),
    ) -> ModelEntry:
        """A validated entry with its cumulative routing table."""
        for version in [*weights, *shadows]:
            if version not in versions:
                raise NotFoundError(
                    f"model '{name}' has no version '{version}' loaded; loaded: {sorted(versions)}"
                )
        if any(w < 0 for w in weights.values()):
            raise ServingError(f"model '{name}': traffic weights must not be negative")
        positive = [(v, float(w)) for v, w in weights.items() if w > 0]
        if versions and not positive:
            raise ServingError(f"model '{name}': traffic weights must have a positive sum")
        cumulative: list[tuple[float, str]] = []
        total = 0.0
        for version, weight in sorted(positive):
            total += weight
            cumulative.append((total, version))
        return cls(name, dict(versions), dict(weights), tuple(shadows), tuple(cumulative))

    @property
    def total(self) -> float:
        """Sum of the traffic weights."""
        return self._cumulative[-1][0] if self._cumulative else 0.0

    @property
    def primary(self) -> VersionSlot:
        """The version with the largest traffic share (used for unversioned metadata)."""
        best = max(self.weights.items(), key=lambda kv: (kv[1], kv[0]))[0]
        return self.versions[best]

    def route(self, request_id: str | None) -> VersionSlot:
        """Pick a version by weight; the same request id always gets the same version."""
        table = self._cumulative
        if len(table) == 1:
            return self.versions[table[0][1]]
        if request_id is None:
            point = random.random() * table[-1][0]
        else:
            point = zlib.crc32(request_id.encode()) / 4294967296.0 * table[-1][0]
        for bound, version in table:
            if point < bound:
                return self.versions[version]
        return self.versions[table[-1][1]]


class ModelRouter:
    """Holds every loaded model version of a server and routes requests to them.

    Args:
        batcher_factory: Builds the :class:`MicroBatcher` of a newly loaded version.
        metrics: Server metrics (ready and traffic gauges are kept up to date).
        warmup: Predict once before a version can take traffic.
    """

    def __init__(
        self,
        batcher_factory: Callable[[ServableModel], MicroBatcher],
        metrics: ServerMetrics | None = None,
        *,
        warmup: bool = True,
    ) -> None:
        self._factory = batcher_factory
        self._metrics = metrics
        self._warmup = warmup
        self._entries: dict[str, ModelEntry] = {}
        # Kept after an unload: labels still arrive for the requests a version answered.
        self._label_specs: dict[tuple[str, str], LabelSpec] = {}
        self._lock = asyncio.Lock()

    # -- reads (hot path) ---------------------------------------------------------------------

    def entry(self, name: str) -> ModelEntry:
        """The entry of model ``name``.

        Raises:
            NotFoundError: No version of the model is loaded.
        """
        found = self._entries.get(name)
        if found is None:
            raise NotFoundError(
                f"model '{name}' is not served here; served: {sorted(self._entries) or 'none'}"
            )
        return found

    def slot(self, name: str, version: str) -> VersionSlot:
        """One explicit version (bypasses routing).

        Raises:
            NotFoundError: The model or version is not loaded.
        """
        found = self.entry(name).versions.get(version)
        if found is None:
            raise NotFoundError(
                f"model '{name}' has no version '{version}' loaded; loaded: "
                f"{sorted(self.entry(name).versions)}"
            )
        return found

    def known(self, name: str, version: str | None = None) -> bool:
        """Whether model ``name`` (and ``version``, when given) is loaded now."""
        entry = self._entries.get(name)
        return entry is not None and (version is None or version in entry.versions)

    def label_spec(self, name: str, version: str) -> LabelSpec | None:
        """What a label of a version loaded at any time by this router must look like."""
        return self._label_specs.get((name, version))

    @property
    def names(self) -> list[str]:
        """Names of the models served."""
        return sorted(self._entries)

    def slots(self) -> list[VersionSlot]:
        """Every loaded version."""
        return [slot for entry in self._entries.values() for slot in entry.versions.values()]

    def describe(self) -> dict[str, Any]:
        """Models, versions, weights and shadows, as JSON-ready data."""
        return {
            name: {
                "versions": sorted(entry.versions),
                "traffic": dict(entry.weights),
                "shadow": list(entry.shadows),
            }
            for name, entry in sorted(self._entries.items())
        }

    # -- changes ------------------------------------------------------------------------------

    async def load(
        self,
        model: ServableModel,
        *,
        traffic: Mapping[str, float] | None = None,
        shadow: Sequence[str] | None = None,
    ) -> VersionSlot:
        """Load and warm a version, then make it routable.

        A new model gets all its traffic; a further version of a served model gets none
        unless ``traffic`` says so (it is reachable by explicit version at once).

        Raises:
            ServingError: The version is already loaded or failed to warm up; nothing changed.
        """
        if not isinstance(model, ServableModel):
            raise ServingError(f"{type(model).__name__} is not a ServableModel")
        version = str(model.version)
        async with self._lock:
            current = self._entries.get(model.name)
            if current is not None and version in current.versions:
                raise ServingError(f"model '{model.name}' version '{version}' is already loaded")
            slot = await self._prepare(model)
            self._label_specs[(slot.name, slot.version)] = slot.labels
            versions = {**(current.versions if current else {}), version: slot}
            if traffic is not None:
                weights = dict(traffic)
            elif current is None:
                weights = {version: 100.0}
            else:
                weights = dict(current.weights)
            shadows = (
                list(shadow) if shadow is not None else list(current.shadows if current else [])
            )
            self._set(ModelEntry.build(model.name, versions, weights, shadows))
            return slot

    async def unload(self, name: str, version: str, *, drain_timeout: float = 30.0) -> None:
        """Stop routing to a version, let its queued requests finish, then drop it.

        Raises:
            NotFoundError: The version is not loaded.
            ServingError: It is the last version with traffic while others are loaded.
        """
        async with self._lock:
            entry = self.entry(name)
            slot = self.slot(name, version)
            versions = {v: s for v, s in entry.versions.items() if v != version}
            weights = {v: w for v, w in entry.weights.items() if v != version}
            shadows = [v for v in entry.shadows if v != version]
            if versions and not any(w > 0 for w in weights.values()):
                raise ServingError(
                    f"model '{name}': unloading version '{version}' would leave no version "
                    "with traffic; set traffic to another version first"
                )
            if versions:
                self._set(ModelEntry.build(name, versions, weights, shadows))
            else:
                del self._entries[name]
            if self._metrics is not None:
                self._metrics.model_ready.labels(name, version).set(0)
                self._metrics.traffic_weight.labels(name, version).set(0)
        await slot.batcher.drain(drain_timeout)

    async def set_traffic(
        self, name: str, weights: Mapping[str, float], shadow: Sequence[str] | None = None
    ) -> None:
        """Replace a model's traffic split (and shadows, when given) at once.

        Raises:
            NotFoundError: A version named is not loaded.
            ServingError: The weights are invalid.
        """
        async with self._lock:
            entry = self.entry(name)
            shadows = list(shadow) if shadow is not None else list(entry.shadows)
            self._set(ModelEntry.build(name, entry.versions, dict(weights), shadows))

    async def swap(self, model: ServableModel, *, retire: bool = True) -> VersionSlot:
        """Zero-downtime change: load and warm ``model``, move all traffic to it, then unload
        the versions it replaced (after their queued requests finish) when ``retire``.

        Raises:
            ServingError: The new version failed to load; the old ones keep serving.
        """
        version = str(model.version)
        slot = await self.load(model)
        await self.set_traffic(model.name, {version: 100.0})
        if retire:
            for old in [v for v in self.entry(model.name).versions if v != version]:
                await self.unload(model.name, old)
        return slot

    # -- internals ----------------------------------------------------------------------------

    def _set(self, entry: ModelEntry) -> None:
        self._entries[entry.name] = entry
        if self._metrics is not None:
            total = entry.total or 1.0
            for version in entry.versions:
                self._metrics.model_ready.labels(entry.name, version).set(1)
                self._metrics.traffic_weight.labels(entry.name, version).set(
                    entry.weights.get(version, 0.0) / total
                )

    async def _prepare(self, model: ServableModel) -> VersionSlot:
        signature = list(model.signature)
        if not signature:
            raise ServingError(f"model '{model.name}' version '{model.version}': empty signature")
        batcher = self._factory(model)
        example = getattr(model, "input_example", None)
        try:
            if isinstance(example, pd.DataFrame) and len(example):
                frame = example[[spec.name for spec in signature]].head(1)
            else:
                frame = batcher.frames.build([synthetic_columns(signature)])
            started = time.perf_counter()
            output = await asyncio.to_thread(model.predict, frame) if self._warmup else None
            # A slow model is offloaded from its very first request.
            batcher.observe(time.perf_counter() - started)
        except Exception as exc:
            raise ServingError(
                f"model '{model.name}' version '{model.version}' failed its warm-up predict: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if output is not None:
            output = np.asarray(output)
            if output.ndim == 0 or output.shape[0] != 1:
                raise ServingError(
                    f"model '{model.name}' version '{model.version}' returned shape "
                    f"{output.shape} for 1 row in its warm-up predict"
                )
            shape = [-1, *output.shape[1:]]
            datatype = v2_datatype_for(output)
        else:
            # Not warmed: assume what the contract says a model with classes answers.
            known = getattr(model, "classes", None)
            shape = [-1] if known is None else [-1, len(list(known))]
            datatype = "FP64"
        labels = LabelSpec.for_model(model, shape)
        classes = _classes_array(labels.classes, shape)
        name = getattr(model, "output_name", None) or (
            "predict_proba" if len(shape) == 2 else "predict"
        )
        if name == LABEL_OUTPUT:
            classes = None
        return VersionSlot(model, batcher, str(name), datatype, shape, labels, classes)


def _classes_array(classes: tuple[Any, ...] | None, shape: list[int]) -> np.ndarray | None:
    """The classes as an array to index with the argmax of each row, when the output is one
    probability per class."""
    if classes is None or len(shape) != 2 or shape[1] != len(classes) or not classes:
        return None
    array = np.asarray(classes)
    if array.dtype.kind not in "biuf" or len({type(c) for c in classes}) > 1:
        # Text or mixed labels: an object array gives back the labels as they were.
        array = np.empty(len(classes), dtype=object)
        array[:] = list(classes)
    return array
