"""Evidence charts and the incident page, from a real SQLite store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsloop.aiops.alerts import AlertIn, alerts_from_flags, list_alerts
from opsloop.aiops.evidence import evidence_series, write_evidence
from opsloop.aiops.incidents import ingest_alerts
from opsloop.aiops.lineage import LineageGraph
from opsloop.aiops.rules import ThresholdRule, evaluate_rules
from opsloop.cli.incidents import app
from opsloop.context import Project
from opsloop.errors import NotFoundError
from opsloop.store import Store, open_store
from opsloop.store import models as m

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PROD = {"deployment": "churn-prod"}
GRAPH = LineageGraph([("model:churn/3", "deployment:churn-prod")])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'evidence.db'}", actor="tester")
    yield s
    s.close()


def make_incident(store: Store) -> int:
    """Two alerted series on churn-prod, a quiet one on churn-eu, an alert with no series, and
    two remediation actions; returns the incident id."""
    points = []
    for i in range(120):
        t = T0 + timedelta(minutes=i)
        points.append(("error_rate", PROD, t, 0.09 if 60 <= i < 80 else 0.01))
        points.append(("error_rate", {"deployment": "churn-eu"}, t, 0.01))
        points.append(("latency_p99_ms", PROD, t, 400.0 if 65 <= i < 75 else 120.0))
    store.series.append(points)

    # The rule adds a label of its own: the series must still be found by its labels.
    rule = ThresholdRule.model_validate(
        {"name": "HighErrorRate", "expr": "error_rate > 0.05 for 2", "labels": {"team": "ml"}}
    )
    alerts = evaluate_rules(store, [rule])
    latency = store.series.read("latency_p99_ms", PROD)
    alerts += alerts_from_flags(
        "latency_p99_ms anomaly",
        {**PROD, "series": "latency_p99_ms"},
        [p.time for p in latency],
        [p.value > 300 for p in latency],
        source="detector",
        details=lambda i: {"score": 0.9, "value": latency[i].value},
    )
    alerts.append(
        AlertIn(name="NodeDown", labels=PROD, starts_at=T0 + timedelta(minutes=61), status="firing")
    )
    result = ingest_alerts(store, alerts, GRAPH, auto_resolve=False)
    assert len(result.opened) == 1, result
    (inc_id,) = result.opened

    with store.db.write() as s:
        for minute, action, status in ((66, "rollback", "succeeded"), (90, "retrain", "failed")):
            s.add(
                m.IncidentAction(
                    incident_id=inc_id,
                    action=action,
                    status=status,
                    policy="heal",
                    created_at=T0 + timedelta(minutes=minute),
                    params={},
                    result={},
                )
            )
    return inc_id


def test_series_behind_the_alerts_with_their_thresholds(store: Store) -> None:
    inc_id = make_incident(store)
    found = evidence_series(store, list_alerts(store, incident_id=inc_id))
    by_title = {s.title: s for s in found}
    assert set(by_title) == {
        "error_rate{deployment=churn-prod}",
        "latency_p99_ms{deployment=churn-prod}",
    }
    errors = by_title["error_rate{deployment=churn-prod}"]
    assert errors.labels == PROD
    assert (errors.op, errors.threshold) == (">", 0.05)
    assert {a.name for a in errors.alerts} == {"HighErrorRate"}
    latency = by_title["latency_p99_ms{deployment=churn-prod}"]
    assert latency.threshold is None
    assert {a.name for a in latency.alerts} == {"latency_p99_ms anomaly"}


def test_write_evidence_charts_and_page(store: Store, tmp_path: Path) -> None:
    inc_id = make_incident(store)
    out = tmp_path / "evidence" / "nested"
    written = write_evidence(store, inc_id, out)

    pngs, index = written[:-1], written[-1]
    assert index == out / "index.html"
    assert len(pngs) == 2
    for png in pngs:
        assert png.parent == out
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert png.stat().st_size > 5_000
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)

    html = index.read_text(encoding="utf-8")
    assert "error_rate{deployment=churn-prod}" in html
    assert "latency_p99_ms{deployment=churn-prod}" in html
    assert "churn-eu" not in html
    assert "threshold &gt; 0.05" in html
    assert "rollback: succeeded" in html and "retrain: failed" in html
    assert "Alerts without a stored series: NodeDown." in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    # Self-contained: nothing is fetched from elsewhere.
    assert "http://" not in html and "https://" not in html


def test_write_evidence_without_series_still_writes_the_page(store: Store, tmp_path: Path) -> None:
    alert = AlertIn(name="NodeDown", labels=PROD, starts_at=T0)
    (inc_id,) = ingest_alerts(store, [alert], GRAPH).opened
    written = write_evidence(store, inc_id, tmp_path)
    assert written == [tmp_path / "index.html"]
    html = written[0].read_text(encoding="utf-8")
    assert "No alert of this incident names a stored metric series." in html
    assert "NodeDown fired" in html


def test_write_evidence_of_a_missing_incident(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="incident 42 does not exist"):
        write_evidence(store, 42, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_cli_show_writes_charts_only_when_asked(project: Project, tmp_path: Path) -> None:
    inc_id = make_incident(project.store)
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    plain = runner.invoke(app, ["show", str(inc_id)], env=env)
    assert plain.exit_code == 0, plain.output
    assert "evidence:" not in plain.output and "rollback: succeeded" in plain.output

    out = tmp_path / "charts"
    shown = runner.invoke(app, ["show", str(inc_id), "--charts", str(out)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "(2 charts)" in shown.output
    assert str(out / "index.html") in shown.output.replace("\n", "")
    assert len(list(out.glob("*.png"))) == 2
