"""Batch scoring parts as Ray tasks (the ``ray`` extra); see :mod:`opsloop.serve.batch`.

The model goes to Ray's object store once; each part is a task of one CPU that reads its
row groups from the shared file system and writes its own output file there. At most
``workers`` parts run at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import MissingDependencyError
from opsloop.serve.batch import BatchPart, score_part

try:
    import ray
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("ray", "ray") from _exc

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["score_parts"]


def _score(
    part: BatchPart, predict: Any, columns: list[str], keep: list[str], batch_rows: int
) -> int:
    return score_part(part, predict, columns, keep, batch_rows)


_remote_score: Any = ray.remote(num_cpus=1, max_retries=0)(_score)


def score_parts(
    parts: Sequence[BatchPart],
    predict: Callable[[Any], Any],
    columns: list[str],
    keep: list[str],
    batch_rows: int,
    workers: int,
    address: str | None,
    on_part: Callable[[int], None],
) -> int:
    """Score every part on the cluster; the rows written."""
    connected_here = False
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        connected_here = True
    try:
        model_ref = ray.put(predict)
        pending = list(parts)
        running: list[Any] = []
        total = 0
        while pending or running:
            while pending and len(running) < workers:
                part = pending.pop(0)
                running.append(_remote_score.remote(part, model_ref, columns, keep, batch_rows))
            done, running = ray.wait(running, num_returns=1)
            for ref in done:
                rows = int(ray.get(ref))
                total += rows
                on_part(rows)
        return total
    finally:
        if connected_here:
            ray.shutdown()
