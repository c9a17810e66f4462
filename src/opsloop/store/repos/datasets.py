"""Content-addressed data set versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import NotFoundError
from opsloop.store import models as m
from opsloop.store.types import DatasetVersionInfo

if TYPE_CHECKING:
    from opsloop.store.db import Database

__all__ = ["DatasetRepository"]


class DatasetRepository:
    """Content-addressed data set versions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        digest: str,
        *,
        source: str,
        row_count: int,
        schema: dict[str, Any],
        name: str = "",
        details: dict[str, Any] | None = None,
    ) -> DatasetVersionInfo:
        """Record a data set version; recording the same digest again returns the first record."""
        with self.db.write() as s:
            row = s.get(m.DatasetVersion, digest)
            if row is None:
                row = m.DatasetVersion(
                    digest=digest,
                    name=name,
                    source=source,
                    row_count=row_count,
                    schema_=schema,
                    details=details or {},
                )
                s.add(row)
                s.flush()
                self.db.event(
                    s, "dataset.recorded", "dataset", digest, {"source": source, "rows": row_count}
                )
            return DatasetVersionInfo.model_validate(row)

    def get(self, digest: str) -> DatasetVersionInfo:
        """A recorded data set version; NotFoundError if absent."""
        with self.db.read() as s:
            row = s.get(m.DatasetVersion, digest)
            if row is None:
                raise NotFoundError(f"dataset version {digest} does not exist")
            return DatasetVersionInfo.model_validate(row)
