"""Scheduled monitors over a real store: drift, quality, health series, alerts, incidents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from typer.testing import CliRunner

from opsloop.aiops.alerting import DEFAULT_DETECTOR_SERIES, raise_alerts
from opsloop.aiops.incidents import list_incidents
from opsloop.aiops.rules import AlertsSection
from opsloop.artifacts import ArtifactStore, open_artifact_store
from opsloop.cli.monitor import app, parse_window
from opsloop.context import Project
from opsloop.errors import MonitorError
from opsloop.monitor import FeatureDrift, build_reference_profile
from opsloop.monitor.service import (
    CURSOR_SERIES,
    DEFAULT_WINDOW,
    MonitorRunResult,
    monitored_until,
    run_monitors,
    severity,
    window_drift,
    write_monitor_report,
)
from opsloop.monitor.windows import (
    LABEL,
    PREDICTION,
    align,
    labelled_window,
    load_window,
    rows_frame,
    window_bounds,
)
from opsloop.spec import ProjectSpec
from opsloop.store import Store, open_store
from opsloop.store.types import PredictionInfo

DEPLOYMENT = "churn-prod"
MODEL = "churn"
NUMERIC = ["f0", "f1", "f2", "f3"]
FEATURES = [*NUMERIC, "plan"]
SHIFTED = ("f1", "f2")
STEP = timedelta(minutes=15)
T0 = datetime(2026, 3, 2, tzinfo=UTC)
REQUESTS = 40
ROWS = 30


@dataclass
class Monitored:
    """A monitoring run and the alerts its new points raised, as the loop runs them."""

    run: MonitorRunResult
    alerts: list
    opened: list[int]
    updated: list[int]
    resolved: list[int]

    def __getattr__(self, name: str):
        return getattr(self.run, name)


def monitor_and_alert(
    store: Store,
    artifacts: ArtifactStore,
    *,
    spec: ProjectSpec | None = None,
    alerts: AlertsSection | None = None,
    detector_series=DEFAULT_DETECTOR_SERIES,
    window: timedelta = DEFAULT_WINDOW,
    **options,
) -> Monitored:
    run = run_monitors(store, artifacts, spec=spec, window=window, **options)
    section = alerts if alerts is not None else (spec.alerts if spec else AlertsSection())
    ingest = raise_alerts(
        store, section, run.first_new, window=window, detector_series=detector_series
    )
    return Monitored(run, ingest.alerts, ingest.opened, ingest.updated, ingest.resolved)


def _score(df: pd.DataFrame) -> np.ndarray:
    z = 0.9 * df["f0"].to_numpy() - 0.6 * df["f3"].to_numpy() + 0.5 * (df["plan"] == "pro")
    return 1.0 / (1.0 + np.exp(-z))


def _features(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    df = pd.DataFrame({name: rng.normal(0.0, 1.0, n) for name in NUMERIC})
    for name in SHIFTED:
        df[name] += shift
    df["plan"] = rng.choice(["basic", "pro"], n, p=[0.6, 0.4])
    return df


def _register(store: Store, artifacts: ArtifactStore, *, profile: bool = True) -> str:
    """Register a version of MODEL (with its reference profile) that DEPLOYMENT serves; its
    number."""
    rng = np.random.default_rng(7)
    ref = _features(rng, 3000)
    built = build_reference_profile(
        ref, numeric=NUMERIC, categorical=["plan"], predictions=_score(ref)
    )
    details: dict[str, object] = {
        "features": {
            "numeric": NUMERIC,
            "categorical": ["plan"],
            "dtypes": {c: str(ref[c].dtype) for c in FEATURES},
        },
        "package": {"signature": {"output": {"kind": "classifier", "classes": [0, 1]}}},
    }
    if profile:
        details["reference_profile"] = artifacts.put_bytes(built.model_dump_json().encode())
    created = store.models.create_version(
        MODEL,
        artifact_digest="sha256:" + "0" * 64,
        dataset_digest="sha256:" + "d" * 64,
        details=details,
    )
    store.deployments.save_status(
        DEPLOYMENT,
        revision=None,
        desired={"model": MODEL, "version": created.version},
        live={},
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )
    return str(created.version)


@dataclass
class Served:
    """What was logged: per window, the request ids, latencies, scores and true labels."""

    start: datetime
    ids: dict[int, list[str]]
    latency: dict[int, np.ndarray]
    truth: dict[str, list[int]]
    scores: dict[str, list[float]]


def _serve(
    store: Store,
    start: datetime,
    windows: range,
    *,
    shifted_from: int = 4,
    missing: tuple[int, str, int] | None = None,
    served: Served | None = None,
    version: str = "1",
) -> Served:
    """Log REQUESTS requests of ROWS rows per window of MODEL ``version``; features shift from
    ``shifted_from``."""
    served = served or Served(start, {}, {}, {}, {})
    for w in windows:
        rng = np.random.default_rng(100 + w)
        df = _features(rng, REQUESTS * ROWS, shift=1.5 if w >= shifted_from else 0.0)
        proba = _score(df)
        truth = (rng.uniform(size=len(df)) < proba).astype(int)
        offsets = np.sort(rng.uniform(0, STEP.total_seconds() - 1, REQUESTS))
        latency = rng.lognormal(np.log(20.0), 0.4, REQUESTS)
        records = []
        served.ids[w] = []
        for i in range(REQUESTS):
            part = df.iloc[i * ROWS : (i + 1) * ROWS]
            inputs = {c: part[c].tolist() for c in FEATURES}
            if missing is not None and missing[0] == w and i < missing[2]:
                inputs[missing[1]] = [None] * ROWS
            request_id = f"w{w}-r{i}"
            p = proba[i * ROWS : (i + 1) * ROWS]
            records.append(
                {
                    "request_id": request_id,
                    "deployment": DEPLOYMENT,
                    "model_name": MODEL,
                    "model_version": version,
                    "time": start + w * STEP + timedelta(seconds=float(offsets[i])),
                    "latency_ms": float(latency[i]),
                    "shadow": False,
                    "inputs": inputs,
                    "outputs": {"values": [[1.0 - float(x), float(x)] for x in p]},
                }
            )
            served.ids[w].append(request_id)
            served.truth[request_id] = truth[i * ROWS : (i + 1) * ROWS].tolist()
            served.scores[request_id] = p.tolist()
        # A shadow answer is never monitored.
        shadow = {**records[0], "request_id": f"w{w}-shadow", "shadow": True, "latency_ms": 1e6}
        store.predictions.log([*records, shadow])
        served.latency[w] = latency
    return served


def _at(k: int) -> datetime:
    """A run a minute after window ``k`` ended: past the grace for late log records."""
    return T0 + k * STEP + timedelta(minutes=1)


def _values(store: Store, name: str, **labels: str) -> list[float]:
    return [p.value for p in store.series.read(name, labels)]


def _point_count(store: Store) -> int:
    return sum(len(store.series.read(n, lab)) for n, lab in store.series.list(""))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, ArtifactStore]]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    yield store, artifacts
    store.close()


def _version_labels(feature: str | None = None) -> dict[str, str]:
    labels = {"deployment": DEPLOYMENT, "model": MODEL, "version": "1"}
    return {**labels, "feature": feature} if feature else labels


# -- windows ------------------------------------------------------------------------------


def test_windows_are_aligned_and_resume_from_an_unaligned_start() -> None:
    at = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)
    assert align(at, STEP) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    bounds = window_bounds(at, datetime(2026, 3, 2, 10, 45, tzinfo=UTC), STEP)
    assert [(lo.minute, hi.minute) for lo, hi in bounds] == [(7, 15), (15, 30), (30, 45)]
    assert window_bounds(at, at, STEP) == []
    with pytest.raises(MonitorError, match="positive"):
        align(at, timedelta(0))


def _info(request_id: str, inputs: dict[str, list[object]], values: list[object]) -> PredictionInfo:
    return PredictionInfo(
        id=1,
        request_id=request_id,
        deployment=DEPLOYMENT,
        model_name=MODEL,
        model_version="1",
        time=T0,
        latency_ms=5.0,
        shadow=False,
        inputs=inputs,
        outputs={"values": values},
    )


def test_rows_frame_flattens_requests_and_matches_labels_to_rows() -> None:
    records = [
        _info("a", {"x": [1, 2], "c": ["u", "v"]}, [[0.9, 0.1], [0.2, 0.8]]),
        _info("b", {"x": [3], "new": [True]}, [[0.5, 0.5]]),
        _info("bad", {"x": [1, 2, 3]}, [[0.5, 0.5]]),
        _info("c", {"x": [None, 5], "c": ["w", None]}, [[0.3, 0.7], [0.6, 0.4]]),
    ]
    rows, requests, malformed = rows_frame(records, {"a": [1, 0], "b": 1, "c": 0})
    assert malformed == ["bad"]
    assert list(requests["request_id"]) == ["a", "b", "bad", "c"]
    assert list(requests["rows"]) == [2, 1, 1, 2]
    assert rows["x"].dtype == np.float64
    assert rows["x"].isna().tolist() == [False, False, False, True, False]
    assert rows["c"].tolist() == ["u", "v", None, "w", None]
    assert rows["new"].tolist() == [None, None, True, None, None]
    assert rows[PREDICTION].tolist() == [0.1, 0.8, 0.5, 0.7, 0.4]
    # a list label goes row by row; a scalar label cannot be split over two rows.
    assert rows[LABEL].tolist() == [1, 0, 1, None, None]


def test_rows_frame_refuses_a_column_named_like_a_window_column() -> None:
    with pytest.raises(MonitorError, match="request r: input column 'label'"):
        rows_frame([_info("r", {"label": [1]}, [0.5])])


def test_load_window_joins_the_label(stores: tuple[Store, ArtifactStore]) -> None:
    store, _ = stores
    served = _serve(store, T0, range(2))
    first = served.ids[0][0]
    # A request takes one label: the second is refused, never an overwrite.
    refused = store.predictions.log_feedback(
        [
            {
                "request_id": first,
                "deployment": DEPLOYMENT,
                "label": {"value": [0] * ROWS},
                "time": T0 + 2 * STEP,
            },
            {
                "request_id": first,
                "deployment": DEPLOYMENT,
                "label": {"value": [1] * ROWS},
                "time": T0 + 3 * STEP,
            },
        ]
    )
    assert refused == [first]
    win = load_window(store, DEPLOYMENT, T0, T0 + STEP)
    assert len(win.requests) == REQUESTS  # the shadow answer is left out
    assert len(win.rows) == REQUESTS * ROWS
    assert win.rows.loc[win.rows["request_id"] == first, LABEL].tolist() == [0] * ROWS
    assert win.rows[LABEL].notna().sum() == ROWS
    assert win.versions() == [(MODEL, "1")]
    # by arrival time: the label arrived in the third window, the refused one nowhere.
    assert len(labelled_window(store, DEPLOYMENT, T0 + 2 * STEP, T0 + 3 * STEP).rows) == ROWS
    late = labelled_window(store, DEPLOYMENT, T0 + 3 * STEP, T0 + 4 * STEP)
    assert late.rows.empty


# -- drift ------------------------------------------------------------------------------------


def test_drift_flips_for_the_shifted_features_only(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(8), missing=(2, "f3", 6))
    result = monitor_and_alert(store, artifacts, now=_at(8), detector_series=None)
    assert result.notes == []
    assert [w.until for w in result.windows] == [T0 + (w + 1) * STEP for w in range(8)]
    assert [w.requests for w in result.windows] == [REQUESTS] * 8
    assert result.windows[-1].drifted == {"churn/1": ["f1", "f2"]}
    for feature in FEATURES:
        detected = _values(store, "drift.detected", **_version_labels(feature))
        expected = [0.0] * 4 + [1.0] * 4 if feature in SHIFTED else [0.0] * 8
        assert detected == expected, feature
        assert len(_values(store, "data.missing_rate", **_version_labels(feature))) == 8
    assert _values(store, "drift.share", **_version_labels()) == [0.0] * 4 + [0.4] * 4
    psi = _values(store, "drift.psi", **_version_labels("f1"))
    assert max(psi[:4]) < 0.1 < 0.5 < min(psi[4:])
    ks = _values(store, "drift.ks", **_version_labels("f2"))
    assert max(ks[:4]) < 0.15 < 0.4 < min(ks[4:])
    assert _values(store, "drift.ks", **_version_labels("plan")) == []  # numeric only
    assert len(_values(store, "drift.psi", **_version_labels("plan"))) == 8
    missing = _values(store, "data.missing_rate", **_version_labels("f3"))
    assert missing == [0.0, 0.0, 6 / REQUESTS] + [0.0] * 5
    out_of_range = _values(store, "data.out_of_range_rate", **_version_labels("f1"))
    assert max(out_of_range[:4]) < min(out_of_range[4:])
    # the model's scores do not use f1 or f2: no prediction drift.
    assert _values(store, "drift.prediction_detected", **_version_labels()) == [0.0] * 8
    assert len(_values(store, "drift.prediction", **_version_labels())) == 8
    # Every measurement is stamped with the start of its window, the cursor with its end.
    starts = [T0 + w * STEP for w in range(8)]
    assert [p.time for p in store.series.read("drift.share", _version_labels())] == starts
    cursor = store.series.read(CURSOR_SERIES, {"deployment": DEPLOYMENT})
    assert [(p.time, p.value) for p in cursor] == [(t + STEP, STEP.total_seconds()) for t in starts]
    assert monitored_until(store, DEPLOYMENT) == T0 + 8 * STEP
    assert result.points == _point_count(store)
    assert {"drift.psi", "service.latency_p99", CURSOR_SERIES} <= result.series


def test_service_health_series(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    served = _serve(store, T0, range(3))
    monitor_and_alert(store, artifacts, now=_at(3), detector_series=None)
    dep = {"deployment": DEPLOYMENT}
    for name, q in (("latency_p50", 50), ("latency_p95", 95), ("latency_p99", 99)):
        got = _values(store, f"service.{name}", **dep)
        want = [float(np.percentile(served.latency[w], q)) for w in range(3)]
        assert got == pytest.approx(want), name
    assert _values(store, "service.request_rate", **dep) == pytest.approx([REQUESTS / 900] * 3)
    assert _values(store, "service.rows", **dep) == [REQUESTS * ROWS] * 3
    assert _values(store, "service.requests", **dep) == [REQUESTS] * 3


def test_a_version_without_profile_still_gets_health_and_a_note(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    _register(store, artifacts, profile=False)
    _serve(store, T0, range(2))
    result = monitor_and_alert(store, artifacts, now=_at(2), detector_series=None)
    assert any("no reference profile" in n for n in result.notes)
    assert store.series.list("drift.") == []
    assert len(_values(store, "service.latency_p95", deployment=DEPLOYMENT)) == 2


# -- quality ------------------------------------------------------------------------------------


def test_quality_series_appear_when_labels_arrive(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    served = _serve(store, T0, range(8))
    first = monitor_and_alert(store, artifacts, now=_at(8), detector_series=None)
    assert store.series.list("quality.") == []
    assert all(w.labelled == 0 for w in first.windows)

    arrival = T0 + 8 * STEP + timedelta(minutes=5)
    labelled_ids = [rid for w in range(4) for rid in served.ids[w]]
    wrong = labelled_ids[0]
    feedback = [
        *(
            {
                "request_id": rid,
                "deployment": DEPLOYMENT,
                "time": arrival,
                "label": {"value": served.truth[rid]},
            }
            for rid in labelled_ids
        ),
        # a second, wrong label for a labelled request is refused.
        {
            "request_id": wrong,
            "deployment": DEPLOYMENT,
            "time": arrival,
            "label": {"value": [1 - v for v in served.truth[wrong]]},
        },
        # another deployment's label for a request id of ours is not ours.
        {
            "request_id": labelled_ids[1],
            "deployment": "other",
            "time": arrival,
            "label": {"value": [0] * ROWS},
        },
    ]
    assert store.predictions.log_feedback(feedback) == [wrong]
    second = monitor_and_alert(store, artifacts, now=_at(9), detector_series=None)
    assert [w.labelled for w in second.windows] == [4 * REQUESTS * ROWS]

    truth = np.concatenate([served.truth[r] for r in labelled_ids])
    scores = np.concatenate([served.scores[r] for r in labelled_ids])
    labels = _version_labels()
    # The labels arrived in the window [8, 9) steps: its points are at its start.
    at = T0 + 8 * STEP
    points = {name: store.series.read(name, labels) for name, _ in store.series.list("quality.")}
    assert set(points) >= {
        "quality.roc_auc",
        "quality.accuracy",
        "quality.f1",
        "quality.log_loss",
        "quality.labelled",
    }
    assert all([p.time for p in pts] == [at] for pts in points.values())
    assert points["quality.labelled"][0].value == len(truth)
    assert points["quality.accuracy"][0].value == pytest.approx(
        accuracy_score(truth, (scores >= 0.5).astype(int))
    )
    assert points["quality.roc_auc"][0].value == pytest.approx(roc_auc_score(truth, scores))


def test_regression_quality_from_the_model_signature(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    store.models.create_version(
        "price",
        artifact_digest="sha256:" + "1" * 64,
        details={"package": {"signature": {"output": {"kind": "regressor"}}}},
    )
    rng = np.random.default_rng(5)
    truth = rng.normal(100, 10, 50)
    pred = truth + rng.normal(0, 2, 50)
    store.predictions.log(
        [
            {
                "request_id": f"p{i}",
                "deployment": "price-prod",
                "model_name": "price",
                "model_version": "1",
                "time": T0 + timedelta(seconds=i),
                "latency_ms": 3.0,
                "shadow": False,
                "inputs": {"area": [float(i)]},
                "outputs": {"values": [float(pred[i])]},
            }
            for i in range(50)
        ]
    )
    store.predictions.log_feedback(
        [
            {
                "request_id": f"p{i}",
                "deployment": "price-prod",
                "time": T0 + STEP,
                "label": {"value": float(truth[i])},
            }
            for i in range(50)
        ]
    )
    result = monitor_and_alert(store, artifacts, now=_at(2), detector_series=None)
    assert result.deployments == ["price-prod"]
    labels = {"deployment": "price-prod", "model": "price", "version": "1"}
    rmse = store.series.read("quality.rmse", labels)
    # The labels arrived at T0 + STEP, the start of the window [1, 2) steps.
    assert [p.time for p in rmse] == [T0 + STEP]
    assert rmse[0].value == pytest.approx(float(np.sqrt(np.mean((truth - pred) ** 2))))
    assert _values(store, "quality.labelled", **labels) == [50.0]


def test_alert_rules_come_from_the_spec(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(6))
    with pytest.raises(pydantic.ValidationError, match=r"alerts.rules.0"):
        ProjectSpec(project="demo", alerts={"rules": [{"name": "no-series"}]})
    spec = ProjectSpec(project="demo", alerts={"rules": ["drift.share > 0.3"]})
    result = monitor_and_alert(store, artifacts, now=_at(6), spec=spec, detector_series=None)
    assert [a.name for a in result.alerts] == ["drift.share"]
    assert len(result.opened) == 1


# -- idempotence, alerts and incidents on every store backend ---------------------------------


def test_rerun_writes_nothing_and_the_next_window_once(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    try:
        _register(store, artifacts)
        served = _serve(store, T0, range(4))
        # Ten seconds after the fourth window ended, its log may still be on its way.
        early = monitor_and_alert(
            store, artifacts, now=T0 + 4 * STEP + timedelta(seconds=10), detector_series=None
        )
        assert len(early.windows) == 3
        first = monitor_and_alert(store, artifacts, now=_at(4), detector_series=None)
        assert [w.until for w in first.windows] == [T0 + 4 * STEP] and first.points > 0
        before = _point_count(store)
        again = monitor_and_alert(store, artifacts, now=_at(4) + STEP / 2)
        assert again.windows == [] and again.points == 0 and again.alerts == []
        assert _point_count(store) == before

        _serve(store, T0, range(4, 5), served=served)
        series_before = {
            (n, tuple(sorted(lab.items()))): len(store.series.read(n, lab))
            for n, lab in store.series.list("")
        }
        third = monitor_and_alert(store, artifacts, now=_at(5), detector_series=None)
        assert [w.until for w in third.windows] == [T0 + 5 * STEP]
        for n, lab in store.series.list(""):
            key = (n, tuple(sorted(lab.items())))
            assert len(store.series.read(n, lab)) == series_before[key] + 1, key
    finally:
        store.close()


def test_drift_rule_alerts_become_one_incident(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    try:
        _register(store, artifacts)
        _serve(store, T0, range(8))
        section = AlertsSection.model_validate({"rules": ["drift.share > 0.3"]})
        result = monitor_and_alert(store, artifacts, now=_at(8), alerts=section)
        rule_alerts = [a for a in result.alerts if a.name == "drift.share"]
        assert len(rule_alerts) == 1  # one alert row, seen in four windows
        # The first drifting window is [4, 5) steps: the alert starts at its start.
        assert rule_alerts[0].starts_at == T0 + 4 * STEP
        assert rule_alerts[0].count == 4 and rule_alerts[0].status == "firing"
        assert len(result.opened) == 1
        incidents = list_incidents(store)
        assert [i.id for i in incidents] == result.opened
        assert incidents[0].kind == "data_drift"
        assert DEPLOYMENT in incidents[0].deployments

        again = monitor_and_alert(store, artifacts, now=_at(8), alerts=section)
        assert again.opened == [] and again.alerts == []
        assert len(list_incidents(store)) == 1
    finally:
        store.close()


def test_a_replaced_version_raises_no_new_alerts(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(8))
    section = AlertsSection.model_validate({"rules": ["drift.share > 0.3"]})

    def serving(traffic: dict[str, float]) -> None:
        desired = {"spec": {"model": MODEL, "traffic": traffic, "shadow": []}}
        store.deployments.save_status(
            DEPLOYMENT,
            revision=None,
            desired=desired,
            live={},
            sync_status="Synced",
            health_status="Healthy",
            reason="",
        )

    # Git says version 2 serves now: version 1's drifting windows are stale.
    serving({"2": 100.0})
    stale = monitor_and_alert(store, artifacts, now=_at(6), alerts=section, detector_series=None)
    assert stale.windows and stale.alerts == [] and stale.opened == []
    # A canary keeps version 1 in the traffic: its windows alert again.
    serving({"1": 70.0, "2": 30.0})
    live = monitor_and_alert(store, artifacts, now=_at(8), alerts=section, detector_series=None)
    assert [a.name for a in live.alerts] == ["drift.share"] and len(live.opened) == 1


def test_a_for_rule_fires_when_windows_come_one_run_at_a_time(
    stores: tuple[Store, ArtifactStore],
) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(8))
    section = AlertsSection.model_validate({"rules": ["drift.share > 0.3 for 3"]})
    fired_at = []
    for w in range(1, 9):
        result = monitor_and_alert(
            store, artifacts, now=_at(w), alerts=section, detector_series=None
        )
        assert len(result.windows) == 1
        if any(a.name == "drift.share" for a in result.alerts):
            fired_at.append(w)
    # windows 5, 6 and 7 (ending at 5, 6, 7 steps) drift: the third in a row fires.
    assert fired_at[0] == 7
    assert len(list_incidents(store)) == 1


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_run_then_report(project: Project) -> None:
    store, artifacts = project.store, project.artifacts
    (project.dir / "opsloop.yaml").write_text(
        "project: demo\nalerts:\n  rules:\n    - drift.share > 0.3\n"
    )
    start = align(datetime.now(UTC), STEP) - 9 * STEP
    _register(store, artifacts)
    _serve(store, start, range(8))
    runner = CliRunner()
    until = (start + 8 * STEP).replace(tzinfo=None).isoformat()
    out = runner.invoke(app, ["run", "--window", "15m", "--until", until])
    assert out.exit_code == 0, out.output
    assert "monitored 8 window(s)" in out.output
    assert "churn/1: f1, f2" in re.sub(r"\s+", " ", out.output)
    assert "incidents opened: 1" in out.output
    again = runner.invoke(app, ["run", "-d", DEPLOYMENT, "--until", until])
    assert again.exit_code == 0 and "nothing to monitor" in again.output

    html = project.dir / "report.html"
    shown = runner.invoke(app, ["report", DEPLOYMENT, "--out", str(html)])
    assert shown.exit_code == 0, shown.output
    text = html.read_text(encoding="utf-8")
    assert "Data set drift" in text or "data set drift" in text
    for name in ("f1", "f2", "drift.share", "service.latency_p95", "drift.score (f1)"):
        assert f'alt="{name}"' in text, name
    assert 'alt="f0"' not in text

    assert parse_window("1h30m") == timedelta(hours=1, minutes=30)
    with pytest.raises(MonitorError, match="not a duration"):
        parse_window("soon")
    with pytest.raises(MonitorError, match="longer than zero"):
        parse_window("0s")
    bad = runner.invoke(app, ["run", "--until", "yesterday"])
    assert isinstance(bad.exception, MonitorError)


def test_report_without_predictions_says_so(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    with pytest.raises(MonitorError, match="no predictions"):
        write_monitor_report(store, artifacts, "ghost", "x.html", until=T0)


def _judged(name: str, method: str, score: float, threshold: float, drifts: bool) -> FeatureDrift:
    return FeatureDrift(
        name=name,
        kind="numeric",
        method=method,
        score=score,
        threshold=threshold,
        drift_detected=drifts,
        rows=10,
        count=10,
        missing_rate=0.0,
        reference_missing_rate=0.0,
    )


def test_severity_reads_p_values_and_distances_alike() -> None:
    # A p-value drifts below its threshold, a distance above it: 1 at the threshold either way.
    assert severity(_judged("a", "ks", 0.01, 0.05, True)) == pytest.approx(5.0)
    assert severity(_judged("a", "chisquare", 0.5, 0.05, False)) == pytest.approx(0.1)
    assert severity(_judged("a", "wasserstein", 0.3, 0.1, True)) == pytest.approx(3.0)
    assert severity(_judged("a", "ks", 0.0, 0.05, True)) == float("inf")
    assert severity(_judged("a", "psi", 0.1, 0.0, False)) is None


def test_window_drift_is_what_the_report_checks(stores: tuple[Store, ArtifactStore]) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    _serve(store, T0, range(6))
    checked = window_drift(store, artifacts, DEPLOYMENT, window=STEP, until=T0 + 5 * STEP)
    assert (checked.model, checked.version) == (MODEL, "1")
    assert (checked.since, checked.window, checked.rows) == (T0 + 4 * STEP, STEP, REQUESTS * ROWS)
    assert checked.answered == ((MODEL, "1", REQUESTS * ROWS),)
    assert sorted(checked.drift.drifted_features) == sorted(SHIFTED)
    assert checked.most_drifted in SHIFTED
    for feature in checked.drift.features.values():
        dist = feature.distribution
        assert dist is not None and len(dist.reference) == len(dist.current) == len(dist.labels)
        assert sum(dist.reference) == pytest.approx(1.0)
        assert sum(dist.current) == pytest.approx(1.0)
    # The latest window with requests by default.
    assert window_drift(store, artifacts, DEPLOYMENT, window=STEP).until == T0 + 6 * STEP
