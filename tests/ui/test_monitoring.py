"""The Monitoring page's reference-against-current chart: the feature and window chosen, the
shares the monitor computed, and the API's problem shown in place when there is nothing to
compare."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from fastapi.testclient import TestClient

from opsloop.loop.monitoring import deployment_drift
from tests.api.conftest import Drifting, Populated
from tests.monitor.test_service import FEATURES, SHIFTED

FIGURE = re.compile(r"data-figure='([^']*)' role=\"img\" aria-label=\"shares of ([^ ]+) per")


def _chart(html: str) -> tuple[str, dict[str, Any]]:
    """The feature and the figure of the page's distribution chart."""
    [(figure, feature)] = FIGURE.findall(html)
    return feature, json.loads(figure)


def _options(html: str, name: str) -> list[tuple[str, bool]]:
    """Values of the ``<select name=...>`` options, with whether each is selected."""
    select = re.search(rf'<select name="{name}">(.*?)</select>', html, re.DOTALL)
    assert select, name
    return [
        (value, bool(selected))
        for value, selected in re.findall(r'<option value="([^"]*)"( selected)?>', select.group(1))
    ]


def _iso(value: Any) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_the_most_drifted_feature_of_the_latest_window_by_default(
    ui_as: Callable[[str | None], TestClient], populated: Populated, drifting: Drifting
) -> None:
    page = ui_as("viewer-token").get("/monitoring", params={"deployment": "churn-prod"})
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    checked = deployment_drift(populated.project, "churn-prod").checked
    feature, figure = _chart(html)
    assert feature == checked.most_drifted and feature in SHIFTED
    dist = checked.drift.features[feature].distribution
    assert dist is not None
    [reference, current] = figure["data"]
    assert (reference["type"], reference["name"], current["name"]) == (
        "bar",
        "reference",
        "current",
    )
    assert figure["layout"]["barmode"] == "group"
    assert reference["x"] == current["x"] == dist.labels
    assert reference["y"] == dist.reference
    assert current["y"] == dist.current

    # Every feature to choose, the chosen one selected; the windows with drift points,
    # newest first, the latest selected.
    features = _options(html, "feature")
    assert [v for v, _ in features] == FEATURES
    assert [v for v, on in features if on] == [feature]
    ends = _options(html, "until")
    assert [v for v, _ in ends] == [_iso(drifting.end(k)) for k in reversed(range(6))]
    assert ends[0] == (_iso(drifting.until), True)
    assert '<label>Feature <select name="feature">' in html
    assert '<label>Window ending <select name="until">' in html
    f = checked.drift.features[feature]
    assert f"method {f.method}, score {f.score:.4g} against threshold {f.threshold:.4g}" in html
    assert "<strong>drift detected</strong>" in html


def test_a_chosen_feature_and_window(
    ui_as: Callable[[str | None], TestClient], populated: Populated, drifting: Drifting
) -> None:
    before = drifting.end(drifting.shifted_from - 1)
    page = ui_as("viewer-token").get(
        "/monitoring",
        params={"deployment": "churn-prod", "feature": "plan", "until": _iso(before)},
    )
    assert page.status_code == 200, page.text[-2000:]
    checked = deployment_drift(populated.project, "churn-prod", until=before).checked
    feature, figure = _chart(page.text)
    assert feature == "plan"
    dist = checked.drift.features["plan"].distribution
    assert dist is not None and dist.kind == "categories"
    assert figure["data"][0]["y"] == dist.reference
    assert figure["data"][1]["y"] == dist.current
    assert figure["data"][0]["x"] == sorted(figure["data"][0]["x"]) == ["basic", "pro"]
    assert [v for v, on in _options(page.text, "until") if on] == [_iso(before)]
    assert "no drift" in page.text


def test_an_empty_window_shows_the_problem_not_an_error_page(
    ui_as: Callable[[str | None], TestClient], drifting: Drifting
) -> None:
    early = drifting.start - timedelta(hours=2)
    page = ui_as("viewer-token").get(
        "/monitoring", params={"deployment": "churn-prod", "until": _iso(early)}
    )
    assert page.status_code == 200
    assert "Nothing to compare in the window ending" in page.text
    assert "has no predictions in" in page.text
    assert "data-figure" in page.text  # the series charts still show
    # The windows with points stay to choose from, the one asked for among them.
    ends = [v for v, _ in _options(page.text, "until")]
    assert ends[0] == _iso(drifting.until)
    assert _iso(early) in ends


def test_windows_are_listed_with_their_own_length_when_it_changed(
    ui_as: Callable[[str | None], TestClient], populated: Populated, drifting: Drifting
) -> None:
    # The deployment's window grew to half an hour after the six windows of a quarter: the
    # monitor's cursor holds each window's own length, and the older windows keep their ends.
    start = drifting.until + timedelta(minutes=15)
    end = start + timedelta(minutes=30)
    labels = {"deployment": "churn-prod", "model": "churn", "version": drifting.version}
    populated.project.store.series.append(
        [
            ("drift.share", labels, start, 0.0),
            ("monitor.window", {"deployment": "churn-prod"}, end, 1800.0),
        ]
    )
    page = ui_as("viewer-token").get(
        "/monitoring", params={"deployment": "churn-prod", "until": _iso(drifting.until)}
    )
    assert page.status_code == 200, page.text[-2000:]
    ends = [v for v, _ in _options(page.text, "until")]
    assert ends == [_iso(end)] + [_iso(drifting.end(k)) for k in reversed(range(6))]
