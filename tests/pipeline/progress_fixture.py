"""A pipeline whose step reports progress lines (imported by the progress tests)."""

from __future__ import annotations

from opsloop.pipeline import pipeline, step
from opsloop.pipeline.progress import report_progress


@step
def count(n: int, text: str) -> int:
    for i in range(n):
        report_progress(f"{text} {i + 1} of {n}")
    return n


@step
def double(value: int) -> int:
    return 2 * value


@pipeline(name="progress_demo")
def progress_demo(n: int = 3, text: str = "item") -> None:
    double(count(n=n, text=text))
