"""The migration that gives alerts their kind labels as columns fills them in for the alerts
stored before it, as new alerts get them, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, text

from opsloop.aiops.alerts import AlertIn
from opsloop.store import open_store
from opsloop.store.migrate import alembic_config


def test_stored_alerts_get_their_kind_labels(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0014_alert_incident_order")
        conn.commit()
        for fp, labels in [
            ("a" * 16, '{"category": "latency", "feature": "age", "model": "churn"}'),
            ("b" * 16, '{"deployment": "web"}'),
        ]:
            conn.execute(
                text(
                    "INSERT INTO alerts (fingerprint, source, name, severity, status, labels, "
                    "annotations, starts_at, last_seen_at, count, details) VALUES (:fp, 'rule', "
                    "'x', 'warning', 'firing', :labels, '{}', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP, 1, '{}')"
                ),
                {"fp": fp, "labels": labels},
            )
        conn.commit()
    engine.dispose()
    store = open_store(store_url)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    store.incidents.record_alerts(
        [
            AlertIn(name="y", labels={"model": "churn", "n": "1"}, starts_at=at, last_seen_at=at),
            AlertIn(name="z", labels={"category": "cost"}, starts_at=at, last_seen_at=at),
        ]
    )
    store.close()
    engine = create_engine(store_url)
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT label_category, label_feature, label_model FROM alerts ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in got] == [
        ("latency", "age", "churn"),
        (None, None, None),
        (None, None, "churn"),
        ("cost", None, None),
    ]
