"""Evidence charts place their labels so that none overlaps another; timeline details read as
sentences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from opsloop.aiops.alerts import AlertInfo
from opsloop.aiops.evidence import (
    EvidenceSeries,
    _chart_figure,
    _label_offsets,
    describe_details,
)
from opsloop.aiops.incidents import ActionInfo

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def action(n: int, name: str, status: str, minute: float) -> ActionInfo:
    return ActionInfo(
        id=n,
        incident_id=1,
        action=name,
        policy="heal",
        status=status,
        params={},
        result={},
        created_at=T0 + timedelta(minutes=minute),
        started_at=None,
        finished_at=None,
        approved_by=None,
        error=None,
    )


def alert() -> AlertInfo:
    return AlertInfo(
        id=1,
        fingerprint="f",
        name="quality-drop",
        status="resolved",
        severity="critical",
        source="rule",
        labels={"deployment": "churn-prod"},
        annotations={},
        details={},
        starts_at=T0 + timedelta(minutes=60),
        last_seen_at=T0 + timedelta(minutes=75),
        ends_at=T0 + timedelta(minutes=80),
        count=3,
        incident_id=1,
    )


def test_action_labels_title_and_legend_do_not_overlap() -> None:
    series = EvidenceSeries(
        name="quality.roc_auc",
        labels={"deployment": "churn-prod"},
        alerts=[alert()],
        threshold=0.65,
        op="<",
    )
    points = [(T0 + timedelta(minutes=i), 0.85 if i < 60 else 0.3) for i in range(120)]
    # The remediation chain runs within a minute: on a two-hour chart, one place.
    actions = [
        action(1, "retrain", "succeeded", 81.0),
        action(2, "canary", "succeeded", 81.2),
        action(3, "promote", "succeeded", 81.4),
        action(4, "notify", "failed", 81.5),
    ]
    fig = _chart_figure(series, points, actions, T0, T0 + timedelta(minutes=120))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if ":" in t.get_text()]
    assert len(labels) == 4
    # The text of each label (Text's extent; an Annotation's own adds its joining line).
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in labels}
    boxes["title"] = ax.title.get_window_extent(renderer)
    legend = ax.get_legend()
    assert legend is not None
    boxes["legend"] = legend.get_window_extent(renderer)
    boxes["plot"] = ax.get_window_extent(renderer)
    for (a, box_a), (b, box_b) in combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), f"{a} overlaps {b}"


def test_labels_far_apart_stay_where_they_are() -> None:
    assert _label_offsets([0.1, 0.5, 0.9], 500) == [0.0, 0.0, 0.0]
    moved = _label_offsets([0.5, 0.5, 0.5], 500)
    assert moved[0] == 0.0 and 0 < moved[1] < moved[2]


def test_timeline_details_read_as_sentences() -> None:
    fired = describe_details(
        {
            "labels": {"deployment": "churn-prod", "model": "churn"},
            "severity": "critical",
            "count": 3,
            "status": "resolved",
        }
    )
    assert fired == (
        "Severity critical; on deployment churn-prod, model churn; fired 3 times; now resolved."
    )
    did = describe_details(
        {
            "policy": "heal",
            "status": "succeeded",
            "result": {"did": "registered churn v2 as champion", "version": 2},
        }
    )
    assert did == "Registered churn v2 as champion; of policy heal."
    planned = describe_details({"action_id": 1, "action": "retrain", "policy": "heal"})
    assert planned == "Action #1 (retrain); of policy heal."
    for text in (fired, did, planned):
        assert "{" not in text and '"' not in text
    assert describe_details({}) == ""
