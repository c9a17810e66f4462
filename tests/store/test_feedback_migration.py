"""The migration to one label per request keeps, of the labels stored before it, the one the
readers used (the latest), on every backend."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from opsloop.store import open_store
from opsloop.store.migrate import alembic_config


def test_duplicate_labels_collapse_to_the_latest(store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.commit()
        for request_id, deployment, value in [
            ("r1", "web", 0),
            ("r1", "web", 1),
            ("r1", "other", 5),
            ("r2", "web", 0),
            ("r1", "web", 2),
        ]:
            conn.execute(
                text(
                    "INSERT INTO feedback (request_id, deployment, time, label) "
                    "VALUES (:r, :d, CURRENT_TIMESTAMP, :l)"
                ),
                {"r": request_id, "d": deployment, "l": f'{{"value": {value}}}'},
            )
        conn.commit()
    engine.dispose()
    store = open_store(store_url)
    got = sorted(
        (f.request_id, f.deployment, f.label["value"]) for f in store.predictions.read_feedback()
    )
    assert got == [("r1", "other", 5), ("r1", "web", 2), ("r2", "web", 0)]
    assert store.predictions.log_feedback(
        [{"request_id": "r1", "deployment": "web", "label": {}}]
    ) == ["r1"]
    store.close()
