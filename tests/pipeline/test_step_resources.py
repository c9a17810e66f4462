"""Resources declared on @step reach the executor's task, and bad ones are refused."""

from __future__ import annotations

import pytest

from opsloop.errors import PipelineError
from opsloop.pipeline import step
from opsloop.pipeline.step import parse_bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1024, 1024), ("512MB", 512 * 10**6), ("2GiB", 2 * 2**30), ("1.5 KiB", 1536), ("7", 7)],
)
def test_sizes(value: int | str, expected: int) -> None:
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "2 parsecs", -1, True, "GB"])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match=r"size|negative"):
        parse_bytes(value)  # type: ignore[arg-type]


def test_step_declares_resources() -> None:
    @step(num_cpus=2, memory="1GiB")
    def heavy() -> int:
        return 1

    assert heavy.num_cpus == 2.0 and heavy.memory == 2**30
    assert step(lambda_free).num_cpus is None


def lambda_free() -> int:
    return 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"num_cpus": -1}, "num_cpus"),
        ({"num_cpus": "two"}, "num_cpus"),
        ({"memory": "x"}, "memory"),
    ],
)
def test_bad_resources(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(PipelineError, match=words):

        @step(**kwargs)  # type: ignore[call-overload]
        def bad() -> int:
            return 1
