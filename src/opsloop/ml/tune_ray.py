"""Tuning trials as Ray tasks across a cluster (the ``ray`` extra).

The cross-validation folds go to Ray's object store once per tuning run; every fold of every
trial of a batch is a task of one CPU. See :class:`opsloop.ml.tune.TrialBackend` for when the
results equal sequential tuning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import MissingDependencyError
from opsloop.ml.tune import FoldOutcome, _fit_fold

try:
    import ray
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("ray", "ray") from _exc

if TYPE_CHECKING:
    from opsloop.ml.tune import Fold

__all__ = ["RayTrials"]


def _fit(estimator: Any, folds: list[Fold], index: int, metric: str, ptype: str) -> FoldOutcome:
    return _fit_fold(estimator, folds[index], metric, ptype)


_remote_fit: Any = ray.remote(num_cpus=1, max_retries=0)(_fit)


class RayTrials:
    """Fits trials' folds as Ray tasks; connects (``address``) unless already connected, as
    a pipeline step under the ray executor is."""

    def __init__(self, folds: list[Fold], *, address: str | None = None) -> None:
        self._connected_here = False
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            self._connected_here = True
        self._folds: Any = ray.put(folds)
        self._count = len(folds)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        self.workers = max(1, int(cpus))

    def fit_many(
        self, estimators: list[Any], metric: str, problem_type: str
    ) -> list[list[FoldOutcome] | BaseException]:
        refs = [
            [
                _remote_fit.remote(e, self._folds, i, metric, problem_type)
                for i in range(self._count)
            ]
            for e in estimators
        ]
        out: list[list[FoldOutcome] | BaseException] = []
        for trial in refs:
            try:
                out.append([(float(r[0]), list(r[1])) for r in ray.get(trial)])
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                out.append(cause)
        return out

    def close(self) -> None:
        self._folds = None
        if self._connected_here and ray.is_initialized():
            ray.shutdown()
