"""Windows are half-open, ``[since, until)``, everywhere: the prediction log a window reads, the
series points it writes (stamped with its start), the series a window's reader gets back, the
monitor report's table and the quickstart's printing. A point exactly on a boundary belongs to
the window that starts there."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opsloop.artifacts import ArtifactStore
from opsloop.loop.demo import window_shares
from opsloop.loop.monitoring import MonitorStepResult
from opsloop.monitor.service import CURSOR_SERIES, run_monitors, serving_now, write_monitor_report
from opsloop.store import Store
from tests.monitor.test_service import (
    DEPLOYMENT,
    FEATURES,
    MODEL,
    STEP,
    T0,
    _at,
    _register,
    _serve,
    stores,  # noqa: F401  (the fixture)
)

DEP = {"deployment": DEPLOYMENT}


def _request(request_id: str, at: datetime, version: str = "1") -> dict[str, object]:
    """One single-row request answered at ``at``."""
    return {
        "request_id": request_id,
        "deployment": DEPLOYMENT,
        "model_name": MODEL,
        "model_version": version,
        "time": at,
        "latency_ms": 5.0,
        "shadow": False,
        "inputs": {name: [0.0] if name != "plan" else ["basic"] for name in FEATURES},
        "outputs": {"values": [[0.5, 0.5]]},
    }


def _boundary_traffic(store: Store, artifacts: ArtifactStore, windows: int = 3) -> None:
    """Windows of 40 requests, the features shifted from window 1 on, and requests placed
    exactly on the boundaries: window ``k`` gets one at its start ``T0 + k·STEP`` and one a
    microsecond before its end, so it holds 42 requests."""
    _register(store, artifacts)
    _serve(store, T0, range(windows), shifted_from=1)
    tick = timedelta(microseconds=1)
    store.predictions.log(
        [
            request
            for k in range(windows)
            for request in (
                _request(f"start-{k}", T0 + k * STEP),
                _request(f"last-{k}", T0 + (k + 1) * STEP - tick),
            )
        ]
    )


def _table(text: str) -> dict[str, dict[str, str]]:
    """The report's 'Metrics per window' table: cells by window, then by column."""
    section = text.split("<h2>Metrics per window</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    header = [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", rows[0])]
    out: dict[str, dict[str, str]] = {}
    for row in rows[1:]:
        cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        out[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return out


def _label(k: int) -> str:
    start, end = T0 + k * STEP, T0 + (k + 1) * STEP
    return f"[{start:%Y-%m-%d %H:%M:%S}, {end:%Y-%m-%d %H:%M:%S})"


def test_a_request_on_a_boundary_counts_in_the_window_that_starts_there(
    stores: tuple[Store, ArtifactStore],  # noqa: F811
) -> None:
    store, artifacts = stores
    _boundary_traffic(store, artifacts)
    result = run_monitors(store, artifacts, now=_at(3))
    assert [(w.since, w.until) for w in result.windows] == [
        (T0 + k * STEP, T0 + (k + 1) * STEP) for k in range(3)
    ]
    assert [w.requests for w in result.windows] == [42, 42, 42]
    requests = store.series.read("service.requests", DEP)
    # Each point lies in the window it measures: at its start.
    assert [(p.time, p.value) for p in requests] == [(T0 + k * STEP, 42.0) for k in range(3)]
    # The cursor alone marks an instant: where each window ended.
    cursor = store.series.read(CURSOR_SERIES, DEP)
    assert [p.time for p in cursor] == [T0 + (k + 1) * STEP for k in range(3)]


def test_reading_a_window_of_a_series_gives_that_window_and_no_neighbour(
    stores: tuple[Store, ArtifactStore],  # noqa: F811
) -> None:
    store, artifacts = stores
    _boundary_traffic(store, artifacts)
    result = run_monitors(store, artifacts, now=_at(3))
    labels = {**DEP, "model": MODEL, "version": "1"}
    for k, summary in enumerate(result.windows):
        since, until = T0 + k * STEP, T0 + (k + 1) * STEP
        (point,) = store.series.read("drift.share", labels, since=since, until=until)
        assert point.time == since
        assert point.value == pytest.approx(summary.share["churn/1"])
    shares = [w.share["churn/1"] for w in result.windows]
    assert shares[0] == 0.0 and shares[1] > 0.3  # the shift starts with window 1


def test_the_quickstart_prints_the_share_of_its_own_window(
    stores: tuple[Store, ArtifactStore],  # noqa: F811
) -> None:
    store, artifacts = stores
    _boundary_traffic(store, artifacts)
    # One pass closing several windows, as a pass after a long remediation does.
    step = MonitorStepResult(monitor=run_monitors(store, artifacts, now=_at(3)))
    labels = {**DEP, "model": MODEL, "version": "1"}
    for k in range(3):
        since, until = T0 + k * STEP, T0 + (k + 1) * STEP
        (stored,) = store.series.read("drift.share", labels, since=since, until=until)
        assert window_shares(step, DEPLOYMENT, since, until) == {"churn/1": stored.value}
    # A window the pass did not monitor shows nothing, not a neighbour's value.
    assert window_shares(step, DEPLOYMENT, T0 + 3 * STEP, T0 + 4 * STEP) == {}
    assert window_shares(step, DEPLOYMENT, T0 + STEP / 2, T0 + STEP) == {}
    assert window_shares(None, DEPLOYMENT, T0, T0 + STEP) == {}


def test_the_report_shows_each_window_its_own_values_and_none_after_it(
    stores: tuple[Store, ArtifactStore],  # noqa: F811
    tmp_path: Path,
) -> None:
    store, artifacts = stores
    _boundary_traffic(store, artifacts, windows=4)
    run_monitors(store, artifacts, now=_at(4))
    labels = {**DEP, "model": MODEL, "version": "1"}
    share = {p.time: p.value for p in store.series.read("drift.share", labels)}
    # The window checked is [1, 2) steps; window 2 and 3 come after it.
    path = write_monitor_report(
        store, artifacts, DEPLOYMENT, tmp_path / "r.html", window=STEP, until=T0 + 2 * STEP
    )
    text = path.read_text(encoding="utf-8")
    table = _table(text)
    assert list(table) == [_label(0), _label(1)]
    for k in (0, 1):
        assert table[_label(k)]["drift.share"] == f"{share[T0 + k * STEP]:.4g}"
        assert table[_label(k)]["service.request_rate"] == f"{42 / STEP.total_seconds():.4g}"
    assert "[2026-03-02 00:15:00, 2026-03-02 00:30:00) UTC, 15m long" in text


# -- what serves --------------------------------------------------------------------------------


def _serving(store: Store, traffic: dict[str, float], *, live: bool = True) -> None:
    spec = {"name": DEPLOYMENT, "model": MODEL, "traffic": traffic, "shadow": []}
    store.deployments.save_status(
        DEPLOYMENT,
        revision=None,
        desired={"spec": {**spec, "traffic": {"1": 100.0}}} if live else {"spec": spec},
        live={"spec": spec} if live else {},
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )


def test_the_report_names_the_versions_serving_now(
    stores: tuple[Store, ArtifactStore],  # noqa: F811
    tmp_path: Path,
) -> None:
    store, artifacts = stores
    _register(store, artifacts)
    version_one = store.models.get_version(MODEL, 1)
    store.models.create_version(
        MODEL, artifact_digest=version_one.artifact_digest, details=version_one.details
    )
    # Version 1 answered most of the window; version 2 a few requests at its end.
    _serve(store, T0, range(1))
    store.predictions.log(
        [_request(f"v2-{i}", T0 + STEP - timedelta(seconds=10 - i), "2") for i in range(10)]
    )
    run_monitors(store, artifacts, now=_at(1))

    def report() -> str:
        path = write_monitor_report(store, artifacts, DEPLOYMENT, tmp_path / "r.html", window=STEP)
        return html.unescape(path.read_text(encoding="utf-8"))

    # The reconciler's record has no traffic split: the report says so and checks the
    # version that answered most.
    text = report()
    assert "Serving now: not recorded" in text and "<h1>churn-prod: churn v1</h1>" in text
    assert "version 1" not in text

    _serving(store, {"1": 90.0, "2": 10.0})
    assert serving_now(store, DEPLOYMENT) is not None
    text = report()
    assert "<h1>churn-prod: churn v1 90 % / v2 10 %</h1>" in text
    assert "Drift below is that of churn v1 on the 1200 rows it answered" in text
    assert "Answered in it: churn v1 (1200 rows), churn v2 (10 rows)" in text

    # Promoted: version 2 serves everything, though version 1 answered most of the window.
    _serving(store, {"2": 100.0})
    text = report()
    assert "<h1>churn-prod: churn v2 (100 %)</h1>" in text
    assert "Serving now: churn v2 (100 %)." in text
    assert "Drift below is that of churn v2 on the 10 rows it answered" in text

    # Nothing runs yet: the desired split of Git.
    _serving(store, {"2": 100.0}, live=False)
    assert "<h1>churn-prod: churn v2 (100 %)</h1>" in report()
