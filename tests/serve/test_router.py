"""Model router: weighted canary, deterministic routing, load/unload/swap semantics."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from opsloop.errors import NotFoundError, ServingError
from opsloop.serve import SklearnServable, signature_from_frame
from opsloop.serve.batching import MicroBatcher
from opsloop.serve.router import ModelRouter
from tests.serve.models import Wrapped, churn_frame, churn_model, regressor_model


def new_router() -> ModelRouter:
    return ModelRouter(MicroBatcher)


def test_weighted_routing_is_deterministic_per_request_id_and_follows_weights() -> None:
    async def main() -> tuple[Counter[str], Counter[str], list[str]]:
        router = new_router()
        await router.load(churn_model("3"))
        await router.load(churn_model("4"))
        await router.set_traffic("churn", {"3": 90, "4": 10})
        entry = router.entry("churn")
        by_id = Counter(entry.route(f"req-{i}").version for i in range(4000))
        random = Counter(entry.route(None).version for i in range(4000))
        repeat = [entry.route("same-id").version for _ in range(50)]
        return by_id, random, repeat

    by_id, random, repeat = asyncio.run(main())
    assert 0.07 < by_id["4"] / 4000 < 0.13
    assert 0.07 < random["4"] / 4000 < 0.13
    assert len(set(repeat)) == 1


def test_new_version_gets_no_traffic_until_told_and_metadata_follows_primary() -> None:
    async def main() -> None:
        router = new_router()
        await router.load(churn_model("1"))
        slot2 = await router.load(churn_model("2"))
        entry = router.entry("churn")
        assert {entry.route(f"r{i}").version for i in range(200)} == {"1"}
        assert router.slot("churn", "2") is slot2
        assert entry.primary.version == "1"
        await router.set_traffic("churn", {"2": 1})
        assert router.entry("churn").primary.version == "2"
        assert router.describe()["churn"]["versions"] == ["1", "2"]

    asyncio.run(main())


def test_failed_warmup_leaves_serving_versions_untouched() -> None:
    async def main() -> None:
        router = new_router()
        await router.load(churn_model("1"))
        with pytest.raises(ServingError, match="failed its warm-up"):
            await router.load(Wrapped(churn_model("2"), fail_load=True), traffic={"2": 100})
        assert router.describe()["churn"] == {
            "versions": ["1"],
            "traffic": {"1": 100.0},
            "shadow": [],
        }
        with pytest.raises(ServingError, match="already loaded"):
            await router.load(churn_model("1"))

    asyncio.run(main())


def test_swap_moves_traffic_and_retires_old_versions() -> None:
    async def main() -> None:
        router = new_router()
        await router.load(churn_model("1"))
        await router.swap(churn_model("2"))
        assert router.describe()["churn"]["versions"] == ["2"]
        assert router.entry("churn").route("x").version == "2"
        with pytest.raises(NotFoundError, match="no version '1'"):
            router.slot("churn", "1")

    asyncio.run(main())


def test_unload_rules_and_unknown_names() -> None:
    async def main() -> None:
        router = new_router()
        await router.load(churn_model("1"))
        await router.load(churn_model("2"))
        with pytest.raises(ServingError, match="no version with traffic"):
            await router.unload("churn", "1")
        await router.unload("churn", "2")
        await router.unload("churn", "1")
        assert router.names == []
        with pytest.raises(NotFoundError, match="model 'churn' is not served"):
            router.entry("churn")
        await router.load(regressor_model())
        with pytest.raises(NotFoundError, match="no version '9'"):
            await router.set_traffic("reg", {"9": 1})
        with pytest.raises(ServingError, match="positive sum"):
            await router.set_traffic("reg", {"1": 0})
        with pytest.raises(NotFoundError):
            await router.set_traffic("reg", {"1": 1}, shadow=["7"])

    asyncio.run(main())


def test_output_metadata_from_warmup() -> None:
    async def main() -> None:
        router = new_router()
        clf = await router.load(churn_model("1"))
        reg = await router.load(regressor_model())
        assert (clf.output_name, clf.output_datatype, clf.output_shape) == (
            "predict_proba",
            "FP64",
            [-1, 2],
        )
        # As MLServer's scikit-learn runtime: labels by default, probabilities on request.
        assert clf.outputs == ["predict", "predict_proba"]
        assert clf.classes is not None and clf.classes.tolist() == [0, 1]
        assert (reg.output_name, reg.output_shape, reg.outputs) == ("predict", [-1], ["predict"])
        assert reg.classes is None
        meta = clf.metadata(["1"])
        assert [i["name"] for i in meta["inputs"]] == ["age", "income", "city", "member"]
        assert [i["datatype"] for i in meta["inputs"]] == ["INT64", "FP64", "BYTES", "BOOL"]
        assert meta["outputs"] == [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ]
        proba = np.array([[0.9, 0.1], [0.2, 0.8]])
        assert clf.has_labels(proba) and clf.class_labels(proba).tolist() == [0, 1]
        assert not clf.has_labels(np.array([0.5, 0.5]))

    asyncio.run(main())


def test_input_example_warms_up_a_strict_encoder() -> None:
    df, y = churn_frame()
    x = df[["city"]]
    strict = make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression()).fit(x, y)
    sig = signature_from_frame(x)

    async def main() -> None:
        router = new_router()
        with pytest.raises(ServingError, match="Found unknown categories"):
            await router.load(SklearnServable("strict", "1", strict, sig))
        slot = await router.load(SklearnServable("strict", "2", strict, sig, input_example=x))
        assert slot.output_shape == [-1, 2]

    asyncio.run(main())
