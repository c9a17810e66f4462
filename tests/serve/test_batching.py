"""Micro-batching: coalescing, splitting answers, isolation of failures, offloading."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from opsloop.errors import ServingError
from opsloop.serve.batching import MicroBatcher
from opsloop.serve.codec import decode_invocations
from tests.serve.models import Wrapped, churn_frame, churn_model, numeric_model


def records(n: int, offset: int = 0) -> list[dict]:
    df, _ = churn_frame(n=n + offset, seed=3)
    return df.iloc[offset:].to_dict("records")


async def submit_all(batcher: MicroBatcher, payloads: list[list[dict]]) -> list[np.ndarray]:
    sig = batcher.model.signature
    return await asyncio.gather(
        *(batcher.submit(decode_invocations({"dataframe_records": p}, sig)) for p in payloads)
    )


def test_concurrent_requests_share_predict_calls_and_get_their_own_rows() -> None:
    model = Wrapped(churn_model())
    payloads = [records(1 + i % 3, offset=i) for i in range(40)]

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=20)
        return await submit_all(batcher, payloads)

    results = asyncio.run(main())
    assert len(model.calls) < len(payloads) / 4  # coalesced
    assert sum(model.calls) == sum(len(p) for p in payloads)
    for payload, result in zip(payloads, results, strict=True):
        expected = model.inner.predict(pd.DataFrame(payload)[[s.name for s in model.signature]])
        np.testing.assert_allclose(result, expected)


def test_max_batch_size_is_respected() -> None:
    model = Wrapped(numeric_model())
    payloads = [[{"f0": float(i), "f1": 0.0, "f2": 1.0, "f3": 2.0}] for i in range(50)]

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=8, max_wait_ms=50)
        await submit_all(batcher, payloads)

    asyncio.run(main())
    assert max(model.calls) <= 8
    assert sum(model.calls) == 50


def test_batching_disabled_predicts_each_request_alone() -> None:
    model = Wrapped(numeric_model())
    payloads = [[{"f0": float(i), "f1": 0.0, "f2": 1.0, "f3": 2.0}] for i in range(10)]

    async def main() -> None:
        await submit_all(MicroBatcher(model, enabled=False), payloads)

    asyncio.run(main())
    assert model.calls == [1] * 10


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    model = Wrapped(numeric_model(), fail_on=-999.0)
    good = [[{"f0": float(i), "f1": 0.0, "f2": 1.0, "f3": 2.0}] for i in range(6)]
    bad = [{"f0": -999.0, "f1": 0.0, "f2": 1.0, "f3": 2.0}]

    async def main() -> list:
        batcher = MicroBatcher(model, max_wait_ms=50)
        sig = model.signature
        return await asyncio.gather(
            *(
                batcher.submit(decode_invocations({"dataframe_records": p}, sig))
                for p in [*good[:3], bad, *good[3:]]
            ),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], ServingError)
    assert "poison value" in str(errors[0])
    assert isinstance(results[3], ServingError)
    assert all(
        isinstance(r, np.ndarray) and r.shape == (1, 2) for i, r in enumerate(results) if i != 3
    )


@pytest.mark.parametrize("offload", ["always", "never", "auto"])
def test_offload_modes_answer_the_same(offload: str) -> None:
    model = Wrapped(churn_model(), delay=0.003)
    payloads = [records(2, offset=i) for i in range(12)]

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(model, offload=offload, offload_threshold_ms=1.0)  # type: ignore[arg-type]
        first = await submit_all(batcher, payloads[:6])
        return first + await submit_all(batcher, payloads[6:])

    results = asyncio.run(main())
    for payload, result in zip(payloads, results, strict=True):
        expected = model.inner.predict(pd.DataFrame(payload)[[s.name for s in model.signature]])
        np.testing.assert_allclose(result, expected)


def test_offloaded_predict_keeps_the_loop_responsive() -> None:
    model = Wrapped(numeric_model(), delay=0.2)

    async def main() -> int:
        batcher = MicroBatcher(model, offload="always")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await submit_all(batcher, [[{"f0": 1.0, "f1": 0.0, "f2": 1.0, "f3": 2.0}]])
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 10  # the loop kept turning during the 200 ms predict


def test_wrong_output_length_is_an_error() -> None:
    class Short:
        name, version = "short", "1"
        signature = numeric_model().signature

        def predict(self, df: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(df) + 1)

    async def main() -> None:
        await submit_all(MicroBatcher(Short()), [[{"f0": 1.0, "f1": 0.0, "f2": 1.0, "f3": 2.0}]])

    with pytest.raises(ServingError, match=r"returned shape \(2,\) for 1 rows"):
        asyncio.run(main())


def test_invalid_settings() -> None:
    with pytest.raises(ServingError, match="max_batch_size"):
        MicroBatcher(numeric_model(), max_batch_size=0)
    with pytest.raises(ServingError, match="max_wait_ms"):
        MicroBatcher(numeric_model(), max_wait_ms=-1)
