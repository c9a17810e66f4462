"""GET /api/v1/monitors/{deployment}/drift: reference against current distributions of a
window, as the monitor computes them, for any reader; problems when there is nothing to
compare."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from opsloop.loop.monitoring import deployment_drift
from tests.api.conftest import Drifting, Populated, is_problem
from tests.monitor.test_service import SHIFTED

URL = "/api/v1/monitors/churn-prod/drift"


def test_a_viewer_reads_the_distributions_of_the_latest_window(
    client_as: Callable[[str | None], httpx.Client], populated: Populated, drifting: Drifting
) -> None:
    got = client_as("viewer-token").get(URL)
    assert got.status_code == 200, got.text
    body = got.json()
    expected = deployment_drift(populated.project, "churn-prod").checked
    assert expected.until == drifting.until
    assert body["deployment"] == "churn-prod"
    assert (body["model"], body["version"]) == ("churn", drifting.version)
    assert body["window_s"] == 900.0
    assert "default" in body["window_source"]
    assert body["rows"] == expected.rows == 40 * 30
    assert body["share_drifted"] == expected.drift.share_drifted == 0.4
    assert body["most_drifted"] in SHIFTED
    assert [f["name"] for f in body["features"]] == list(expected.drift.features)
    for feature in body["features"]:
        want = expected.drift.features[feature["name"]]
        assert want.distribution is not None
        assert feature["distribution"] == want.distribution.model_dump()
        assert feature["method"] == want.method
        assert feature["score"] == want.score
        assert feature["threshold"] == want.threshold
        assert feature["drift_detected"] is want.drift_detected
        assert feature["drift_detected"] is (feature["name"] in SHIFTED)
    f1 = next(f for f in body["features"] if f["name"] == "f1")
    assert f1["distribution"]["kind"] == "histogram"
    assert len(f1["distribution"]["edges"]) == len(f1["distribution"]["labels"]) + 1
    plan = next(f for f in body["features"] if f["name"] == "plan")
    assert plan["distribution"]["kind"] == "categories"
    assert plan["distribution"]["edges"] is None


def test_a_chosen_window_and_length(
    client_as: Callable[[str | None], httpx.Client], populated: Populated, drifting: Drifting
) -> None:
    viewer = client_as("viewer-token")
    before = drifting.end(drifting.shifted_from - 1)
    body = viewer.get(URL, params={"until": before.isoformat()}).json()
    assert body["until"].startswith(before.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["share_drifted"] == 0.0
    assert not any(f["drift_detected"] for f in body["features"])

    # Two windows at once: a given length, said as given.
    got = viewer.get(URL, params={"until": drifting.until.isoformat(), "window": "30m"}).json()
    assert got["window_s"] == 1800.0
    assert got["window_source"] == "given with the window parameter"
    assert got["rows"] == 2 * 40 * 30
    expected = deployment_drift(
        populated.project, "churn-prod", window=timedelta(minutes=30), until=drifting.until
    ).checked
    f2 = next(f for f in got["features"] if f["name"] == "f2")
    assert f2["distribution"] == expected.drift.features["f2"].distribution.model_dump()


def test_nothing_to_compare_is_a_problem(
    client_as: Callable[[str | None], httpx.Client], drifting: Drifting
) -> None:
    viewer = client_as("viewer-token")
    ghost = is_problem(viewer.get("/api/v1/monitors/ghost/drift"), 404)
    assert "no deployment 'ghost'" in ghost["detail"]

    early = (drifting.start - timedelta(hours=1)).isoformat()
    empty = is_problem(viewer.get(URL, params={"until": early}), 422)
    assert "has no predictions in" in empty["detail"]
    assert empty["type"].endswith("/monitor")

    bad = is_problem(viewer.get(URL, params={"window": "soon"}), 422)
    assert "not a duration" in bad["detail"]
    is_problem(viewer.get(URL, params={"window": "0s"}), 422)
    is_problem(viewer.get(URL, params={"until": "0001-01-01T00:00:00"}), 422)
    is_problem(viewer.get(URL, params={"window": "1000000000000000s"}), 422)
    is_problem(client_as(None).get(URL), 401)


def test_a_deployment_without_predictions_is_a_problem(
    client_as: Callable[[str | None], httpx.Client],
) -> None:
    # In Git, but nothing logged yet: not unknown, just nothing to compare.
    body = is_problem(client_as("viewer-token").get(URL), 422)
    assert "no predictions" in body["detail"]
