"""Windows are half-open, ``[since, until)``, everywhere: the prediction log a window reads, the
series points it writes (stamped with its start), the series a window's reader gets back, the
monitor report's table and the quickstart's printing. A point exactly on a boundary belongs to
the window that starts there."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from opsloop.artifacts import ArtifactStore
from opsloop.loop.demo import window_shares
from opsloop.loop.monitoring import MonitorStepResult
from opsloop.monitor.service import CURSOR_SERIES, run_monitors
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
