"""The current project: its folder, spec, settings, metadata store and artifact store.

Library calls that take no explicit ``store=`` or ``artifacts=`` use the current project. It is
found once per process from ``OPSLOOP_PROJECT_DIR`` or the working directory (the nearest
folder with an ``opsloop.yaml``) and can be switched with :func:`use_project`.

Outside a project (no ``opsloop.yaml`` here or above, no ``OPSLOOP_PROJECT_DIR``) the current
project is the zero-configuration one of the working directory. Finding it creates nothing.
Calls that record something (``start_run``, ``register_model``, ``run_pipeline``) create its
``.opsloop/`` folder on first use; read-only lookups (``load_model`` of a registered URI,
``load_output`` of a run id) in a folder that has no ``.opsloop/`` yet raise
:class:`~opsloop.errors.NotFoundError` instead of creating an empty store to look in. The CLI
is stricter: a command that needs a project wants an ``opsloop.yaml`` (or an existing
``.opsloop/``) and creates nothing otherwise.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.credentials import saved_token
from opsloop.errors import ConfigError, NotFoundError
from opsloop.settings import (
    STATE_DIR,
    Settings,
    default_artifact_url,
    default_store_url,
    env_settings,
    load_settings,
    setting_name,
)
from opsloop.spec import ProjectSpec, find_project_dir, load_spec
from opsloop.spec.loader import SPEC_FILE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opsloop.artifacts import ArtifactStore
    from opsloop.store import Store


@dataclass
class Project:
    """One opsloop project and its stores (opened on first use)."""

    dir: Path
    settings: Settings
    spec: ProjectSpec | None = None
    _store: Store | None = field(default=None, repr=False)
    _artifacts: ArtifactStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        """The project name from the spec, or the folder name."""
        return self.spec.project if self.spec is not None else self.dir.name

    @property
    def state_dir(self) -> Path:
        """``<project>/.opsloop``: local state (store, artifacts, caches)."""
        return self.dir / STATE_DIR

    @property
    def initialised(self) -> bool:
        """Whether the folder is a project already: it holds an ``opsloop.yaml`` or a
        ``.opsloop/`` state folder, or its metadata store is configured to live elsewhere."""
        return (
            self.spec is not None
            or (self.dir / SPEC_FILE).is_file()
            or self.state_dir.is_dir()
            or bool(self.settings.store_url)
            or self.remote
        )

    @property
    def remote(self) -> bool:
        """Whether the stores are an opsloop server's (``OPSLOOP_SERVER`` is set)."""
        return bool(self.settings.server)

    @property
    def _token(self) -> str | None:
        """``OPSLOOP_TOKEN``, else the token ``opsloop login`` saved for the server."""
        token = self.settings.token
        if token is not None:
            return token.get_secret_value()
        return saved_token(self.settings.server) if self.settings.server else None

    def require_state(self, what: str) -> None:
        """Refuse a read-only lookup in a folder that is not a project yet (see the module).

        Raises:
            NotFoundError: The folder holds no ``opsloop.yaml`` and no ``.opsloop/``.
        """
        if not self.initialised:
            raise NotFoundError(
                f"{what}: {self.dir} is not an opsloop project (no {SPEC_FILE} here or above, "
                f"no {STATE_DIR}/), so there is nothing to read",
                hint=f"{NO_PROJECT_HINT}, {_ELSEWHERE_HINT}",
            )

    def holds(self, store: object) -> bool:
        """Whether ``store`` is this project's metadata store, already opened (never opens it)."""
        return self._store is not None and self._store is store

    @property
    def store_url(self) -> str:
        """The metadata store URL in effect."""
        return self.settings.store_url or default_store_url(self.dir)

    @property
    def artifact_url(self) -> str:
        """The artifact store URL in effect."""
        return self.settings.artifact_url or default_artifact_url(self.dir)

    @property
    def store(self) -> Store:
        """The metadata store, opened (and migrated) on first use."""
        with self._lock:
            if self._store is None:
                # Lazy imports here and below (noqa: PLC0415) of opsloop.store, opsloop.artifacts:
                # each loads only where it is used, so importing this module stays light.
                if self.settings.server:
                    from opsloop.store.remote import RemoteStore  # noqa: PLC0415

                    self._store = RemoteStore(
                        self.settings.server,
                        self._token,
                        actor=self.settings.resolved_actor(),
                    )
                    return self._store
                from opsloop.store import open_store  # noqa: PLC0415

                self._store = open_store(
                    self.store_url,
                    actor=self.settings.resolved_actor(),
                    heartbeat_timeout_s=self.settings.heartbeat_timeout_s,
                    setting=setting_name("store_url", self.settings, self.dir),
                    state_dir=self.state_dir,
                )
            return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store, opened on first use."""
        with self._lock:
            if self._artifacts is None and self.settings.server:
                from opsloop.artifacts.remote import RemoteArtifactStore  # noqa: PLC0415

                self._artifacts = RemoteArtifactStore(self.settings.server, self._token)
            if self._artifacts is None:
                from opsloop.artifacts import open_artifact_store  # noqa: PLC0415

                options: dict[str, Any] = {}
                if self.artifact_url.startswith("s3://") and self.settings.s3_endpoint_url:
                    options["client_kwargs"] = {"endpoint_url": self.settings.s3_endpoint_url}
                self._artifacts = open_artifact_store(
                    self.artifact_url,
                    setting=setting_name("artifact_url", self.settings, self.dir),
                    state_dir=self.state_dir,
                    **options,
                )
            return self._artifacts

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None
        close = getattr(self._artifacts, "close", None)
        if close is not None:
            # Only a remote artifact store holds connections.
            close()
            self._artifacts = None

    def fresh(self) -> Project:
        """The same project without opened stores (for a forked child process)."""
        return Project(dir=self.dir, settings=self.settings, spec=self.spec)


NO_PROJECT_HINT = "see 'opsloop init' or 'opsloop quickstart'"
_ELSEWHERE_HINT = "or name a project folder with -C DIR or OPSLOOP_PROJECT_DIR"


def find_project(path: Path | None = None) -> Project:
    """The project a command works on, refusing a folder that is not one.

    ``path`` (``-C DIR``), else ``OPSLOOP_PROJECT_DIR``, else the nearest folder with an
    ``opsloop.yaml``, else the working directory when it holds a ``.opsloop/`` already, or
    in remote mode (``OPSLOOP_SERVER``: the stores are the server's). Nothing is created.

    Raises:
        ConfigError: No such folder, or it holds neither an ``opsloop.yaml`` nor a
            ``.opsloop/``.
        SpecError: Its ``opsloop.yaml`` is invalid.
    """
    settings_env = env_settings()
    explicit = path or settings_env.project_dir
    if explicit is not None:
        folder = explicit.resolve()
        local = (folder / SPEC_FILE).is_file() or (folder / STATE_DIR).is_dir()
        if not local and not (settings_env.server and folder.is_dir()):
            what = "does not exist" if not folder.exists() else f"holds no {SPEC_FILE}"
            raise ConfigError(f"{folder} {what}: it is not an opsloop project; {NO_PROJECT_HINT}")
        return open_project(folder)
    cwd = Path.cwd()
    if find_project_dir(cwd) is None and not (cwd / STATE_DIR).is_dir() and not settings_env.server:
        raise ConfigError(
            f"no {SPEC_FILE} here or above ({cwd}); {NO_PROJECT_HINT}", hint=_ELSEWHERE_HINT
        )
    return open_project()


def open_project(path: Path | None = None) -> Project:
    """Open the project at ``path`` (or the discovered one); its spec is validated now."""
    settings_env = env_settings()
    if path is None:
        path = settings_env.project_dir or find_project_dir(Path.cwd()) or Path.cwd()
    path = path.resolve()
    spec = load_spec(path) if (path / SPEC_FILE).is_file() else None
    return Project(dir=path, settings=load_settings(path, spec), spec=spec)


_current: Project | None = None
_current_lock = threading.Lock()


def current_project() -> Project:
    """The project library calls use by default."""
    global _current
    with _current_lock:
        if _current is None:
            _current = open_project()
        return _current


def set_current_project(project: Project | None) -> None:
    """Make ``project`` the default (None: discover again on next use)."""
    global _current
    with _current_lock:
        _current = project


@contextmanager
def use_project(project: Project | Path | str) -> Iterator[Project]:
    """Make a project the default inside a ``with`` block."""
    global _current
    proj = project if isinstance(project, Project) else open_project(Path(project))
    with _current_lock:
        previous, _current = _current, proj
    try:
        yield proj
    finally:
        with _current_lock:
            _current = previous
        if proj is not project:
            proj.close()


def _after_fork_in_child() -> None:
    # A forked child must not share the parent's database connections: it keeps the project
    # but opens its own stores on first use.
    global _current, _current_lock
    _current_lock = threading.Lock()
    if _current is not None:
        if _current._store is not None and not _current.remote:
            _current._store.engine.dispose(close=False)
        _current = _current.fresh()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
