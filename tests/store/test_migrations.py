"""The ORM models and the Alembic migrations describe the same schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from opsloop.errors import ConfigError
from opsloop.store import open_store
from opsloop.store.migrate import VERSION_TABLE, current_revision, head_revision
from opsloop.store.models import Base


def test_migrations_match_models(store_url: str) -> None:
    store = open_store(store_url)
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    store.close()
    assert diff == []


def test_unsupported_url() -> None:
    with pytest.raises(ConfigError, match="unsupported store URL"):
        open_store("mysql://x/y")
