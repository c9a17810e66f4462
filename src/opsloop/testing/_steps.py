"""Steps the executor checks run (at module level, so that any worker can import them)."""

from __future__ import annotations

from opsloop.pipeline.step import step
from opsloop.pipeline.worker import current_task


@step
def parity(n: int) -> int:
    return n % 2


@step
def explode(value: int) -> int:
    raise ValueError(f"cannot handle {value}")


@step(outputs=("one", "two"))
def wrong_arity() -> tuple[int, int, int]:
    return (1, 2, 3)


@step
def introspect() -> str:
    task = current_task()
    if task is None:
        raise RuntimeError("no current task while the step runs")
    return f"{task.run_id}/{task.step}/{task.attempt}"


@step
def chatty(text: str) -> int:
    print(text)
    return len(text)
