"""The model registry: registered models, their numbered versions, aliases and tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from opsloop.errors import AlreadyExistsError, NotFoundError, TrackingError
from opsloop.names import check_name
from opsloop.store import models as m
from opsloop.store.types import ModelVersionInfo, RegisteredModelInfo

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from opsloop.store.db import Database

__all__ = ["ModelRepository"]


def _check_name(kind: str, name: str) -> None:
    check_name(kind, name, TrackingError)


class ModelRepository:
    """The model registry: registered models, their numbered versions, aliases and tags."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModelInfo:
        """Create a registered model; AlreadyExistsError if the name is taken."""
        _check_name("model", name)
        with self.db.write() as s:
            if s.get(m.RegisteredModel, name) is not None:
                raise AlreadyExistsError(f"model '{name}' already exists")
            s.add(m.RegisteredModel(name=name, description=description))
            s.flush()
            for k, v in (tags or {}).items():
                s.add(m.ModelTag(model_name=name, key=k, value=v))
            self.db.event(
                s,
                "model.created",
                "model",
                name,
                {
                    "description": description,
                    "before": None,
                    "after": {"description": description, "tags": dict(tags or {})},
                },
            )
        return self.get(name)

    def get(self, name: str) -> RegisteredModelInfo:
        """A registered model; NotFoundError if absent."""
        with self.db.read() as s:
            row = s.get(m.RegisteredModel, name)
            if row is None:
                raise NotFoundError(
                    f"model '{name}' is not registered", hint="see 'opsloop models list'"
                )
            return self._model_info(s, row)

    def _model_info(self, s: Session, row: m.RegisteredModel) -> RegisteredModelInfo:
        latest = s.scalar(
            select(func.max(m.ModelVersion.version)).where(m.ModelVersion.model_name == row.name)
        )
        aliases = {
            a.alias: a.version
            for a in s.scalars(select(m.ModelAlias).where(m.ModelAlias.model_name == row.name))
        }
        tags = {
            t.key: t.value
            for t in s.scalars(select(m.ModelTag).where(m.ModelTag.model_name == row.name))
        }
        return RegisteredModelInfo(
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            latest_version=latest,
            aliases=aliases,
            tags=tags,
        )

    def list(self) -> builtins.list[RegisteredModelInfo]:
        """Every registered model, by name."""
        with self.db.read() as s:
            rows = s.scalars(select(m.RegisteredModel).order_by(m.RegisteredModel.name)).all()
            return [self._model_info(s, r) for r in rows]

    def create_version(
        self,
        model_name: str,
        *,
        artifact_digest: str,
        run_id: str | None = None,
        dataset_digest: str | None = None,
        source: str = "",
        description: str = "",
        details: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        alias: str | None = None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> ModelVersionInfo:
        """Add the next version of ``model_name`` (created if new), optionally aliased.

        The version number is taken under a row lock on the model (PostgreSQL) or the database
        write lock (SQLite), so concurrent registrations get distinct, gap-free numbers.
        ``events`` (kind, details) are recorded on the new version in the same transaction.
        """
        _check_name("model", model_name)
        if alias is not None:
            _check_name("alias", alias)
        for attempt in range(5):
            try:
                version = self._insert_version(
                    model_name,
                    artifact_digest=artifact_digest,
                    run_id=run_id,
                    dataset_digest=dataset_digest,
                    source=source,
                    description=description,
                    details=details,
                    tags=tags,
                    alias=alias,
                    events=events,
                )
                break
            except IntegrityError:
                # Two first registrations of a new model raced to create it; the loser retries
                # and now finds the model row to lock.
                if attempt == 4:
                    raise
        return self.get_version(model_name, version)

    def _insert_version(
        self,
        model_name: str,
        *,
        artifact_digest: str,
        run_id: str | None,
        dataset_digest: str | None,
        source: str,
        description: str,
        details: dict[str, Any] | None,
        tags: dict[str, str] | None,
        alias: str | None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> int:
        with self.db.write() as s:
            model = s.scalar(
                select(m.RegisteredModel)
                .where(m.RegisteredModel.name == model_name)
                .with_for_update()
            )
            if model is None:
                model = m.RegisteredModel(name=model_name, description="")
                s.add(model)
                s.flush()
                self.db.event(
                    s,
                    "model.created",
                    "model",
                    model_name,
                    {"before": None, "after": {"description": "", "tags": {}}},
                )
            current = s.scalar(
                select(func.max(m.ModelVersion.version)).where(
                    m.ModelVersion.model_name == model_name
                )
            )
            version = (current or 0) + 1
            row = m.ModelVersion(
                model_name=model_name,
                version=version,
                artifact_digest=artifact_digest,
                run_id=run_id,
                dataset_digest=dataset_digest,
                source=source,
                description=description,
                details=details or {},
            )
            s.add(row)
            model.updated_at = m.utcnow()
            s.flush()
            for k, v in (tags or {}).items():
                s.add(m.ModelVersionTag(version_id=row.id, key=k, value=v))
            registered = {"artifact": artifact_digest, "run_id": run_id, "dataset": dataset_digest}
            self.db.event(
                s,
                "model_version.created",
                "model_version",
                f"{model_name}/{version}",
                {**registered, "before": None, "after": {"version": version, **registered}},
            )
            for kind, event_details in events:
                self.db.event(s, kind, "model_version", f"{model_name}/{version}", event_details)
            if alias is not None:
                self._set_alias(s, model_name, alias, version)
        return version

    def _version_info(self, s: Session, row: m.ModelVersion) -> ModelVersionInfo:
        aliases = sorted(
            s.scalars(
                select(m.ModelAlias.alias).where(
                    m.ModelAlias.model_name == row.model_name, m.ModelAlias.version == row.version
                )
            )
        )
        tags = {
            t.key: t.value
            for t in s.scalars(
                select(m.ModelVersionTag).where(m.ModelVersionTag.version_id == row.id)
            )
        }
        data = {c: getattr(row, c) for c in ModelVersionInfo.model_fields if hasattr(row, c)}
        return ModelVersionInfo.model_validate({**data, "aliases": aliases, "tags": tags})

    def _version_row(self, s: Session, model_name: str, version: int) -> m.ModelVersion:
        row = s.scalar(
            select(m.ModelVersion).where(
                m.ModelVersion.model_name == model_name, m.ModelVersion.version == version
            )
        )
        if row is None:
            if s.get(m.RegisteredModel, model_name) is None:
                raise NotFoundError(
                    f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                )
            raise NotFoundError(
                f"model '{model_name}' has no version {version}",
                hint=f"see 'opsloop models show {model_name}'",
            )
        return row

    def get_version(self, model_name: str, version: int) -> ModelVersionInfo:
        """One version; NotFoundError if the model or the version is absent."""
        with self.db.read() as s:
            return self._version_info(s, self._version_row(s, model_name, version))

    def get_version_by_alias(self, model_name: str, alias: str) -> ModelVersionInfo:
        """The version an alias points at; NotFoundError if the alias is not set."""
        with self.db.read() as s:
            row = s.get(m.ModelAlias, (model_name, alias))
            if row is None:
                if s.get(m.RegisteredModel, model_name) is None:
                    raise NotFoundError(
                        f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                    )
                raise NotFoundError(
                    f"model '{model_name}' has no alias '{alias}'",
                    hint=f"see 'opsloop models show {model_name}'",
                )
            return self._version_info(s, self._version_row(s, model_name, row.version))

    def list_versions(self, model_name: str) -> builtins.list[ModelVersionInfo]:
        """Versions of a model, newest first."""
        with self.db.read() as s:
            if s.get(m.RegisteredModel, model_name) is None:
                raise NotFoundError(
                    f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                )
            rows = s.scalars(
                select(m.ModelVersion)
                .where(m.ModelVersion.model_name == model_name)
                .order_by(m.ModelVersion.version.desc())
            ).all()
            return [self._version_info(s, r) for r in rows]

    def _set_alias(self, s: Session, model_name: str, alias: str, version: int) -> int | None:
        self._version_row(s, model_name, version)
        row = s.get(m.ModelAlias, (model_name, alias))
        previous = None if row is None else row.version
        if row is None:
            s.add(m.ModelAlias(model_name=model_name, alias=alias, version=version))
        else:
            row.version = version
            row.updated_at = m.utcnow()
        self.db.event(
            s,
            "alias.set",
            "model",
            model_name,
            {
                "alias": alias,
                "version": version,
                "previous": previous,
                "before": None if previous is None else {"version": previous},
                "after": {"version": version},
            },
        )
        return previous

    def set_alias(self, model_name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before, if any."""
        _check_name("alias", alias)
        if alias.isdigit():
            raise TrackingError(f"invalid alias {alias!r}: an alias cannot be a number")
        with self.db.write() as s:
            return self._set_alias(s, model_name, alias, version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove an alias; NotFoundError if it is not set."""
        with self.db.write() as s:
            row = s.get(m.ModelAlias, (model_name, alias))
            if row is None:
                raise NotFoundError(f"model '{model_name}' has no alias '{alias}'")
            version = row.version
            s.delete(row)
            self.db.event(
                s,
                "alias.deleted",
                "model",
                model_name,
                {"alias": alias, "version": version, "before": {"version": version}, "after": None},
            )

    def update(
        self, model_name: str, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        """Change a model's description and/or set tags."""
        with self.db.write() as s:
            row = s.get(m.RegisteredModel, model_name)
            if row is None:
                raise NotFoundError(f"model '{model_name}' is not registered")
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            if description is not None:
                before["description"], after["description"] = row.description, description
                row.description = description
            if tags:
                old = {
                    t.key: t.value
                    for t in s.scalars(
                        select(m.ModelTag).where(
                            m.ModelTag.model_name == model_name, m.ModelTag.key.in_(list(tags))
                        )
                    )
                }
                before["tags"] = {k: old.get(k) for k in tags}
                after["tags"] = dict(tags)
            for k, v in (tags or {}).items():
                s.merge(m.ModelTag(model_name=model_name, key=k, value=v))
            row.updated_at = m.utcnow()
            self.db.event(
                s,
                "model.updated",
                "model",
                model_name,
                {"description": description, "tags": tags or {}, "before": before, "after": after},
            )

    def update_version(
        self,
        model_name: str,
        version: int,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> ModelVersionInfo:
        """Change a version's description, status, set tags or merge keys into its details."""
        with self.db.write() as s:
            row = self._version_row(s, model_name, version)
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            if description is not None:
                before["description"], after["description"] = row.description, description
                row.description = description
            if status is not None:
                before["status"], after["status"] = row.status, status
                row.status = status
            if details:
                # The keys that changed, not their values: details hold whole scan reports.
                before["details"] = sorted(k for k in details if k in row.details)
                after["details"] = sorted(details)
                row.details = {**row.details, **details}
            if tags:
                old = {
                    t.key: t.value
                    for t in s.scalars(
                        select(m.ModelVersionTag).where(
                            m.ModelVersionTag.version_id == row.id,
                            m.ModelVersionTag.key.in_(list(tags)),
                        )
                    )
                }
                before["tags"] = {k: old.get(k) for k in tags}
                after["tags"] = dict(tags)
            for k, v in (tags or {}).items():
                s.merge(m.ModelVersionTag(version_id=row.id, key=k, value=v))
            self.db.event(
                s,
                "model_version.updated",
                "model_version",
                f"{model_name}/{version}",
                {
                    "description": description,
                    "status": status,
                    "tags": tags or {},
                    "details": sorted(details or {}),
                    "before": before,
                    "after": after,
                },
            )
            s.flush()
            return self._version_info(s, row)

    def all_versions(self) -> builtins.list[ModelVersionInfo]:
        """Every version of every model, in the order they were registered."""
        with self.db.read() as s:
            rows = s.scalars(select(m.ModelVersion).order_by(m.ModelVersion.id)).all()
            return [self._version_info(s, r) for r in rows]

    def aliases(self) -> dict[tuple[str, str], int]:
        """Every alias: ``(model, alias)`` -> version."""
        with self.db.read() as s:
            return {(a.model_name, a.alias): a.version for a in s.scalars(select(m.ModelAlias))}
