"""Settings from the environment (``OPSLOOP_*``) and ``opsloop.yaml``.

Precedence, highest first: environment variables, the project's ``opsloop.yaml``, defaults.
The defaults are the zero-config local mode: SQLite and files under ``<project>/.opsloop``.
"""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from opsloop.errors import ConfigError
from opsloop.redact import redact_url, remember, remember_secret
from opsloop.secretrefs import literal_secret_warning, resolve_secret

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opsloop.spec.schema import ProjectSpec

STATE_DIR = ".opsloop"
_log = logging.getLogger(__name__)

_URL_FIELDS = {"store_url": "store.url", "artifact_url": "artifacts.url", "s3_endpoint_url": ""}


def _split_ports(value: str) -> tuple[int, int]:
    first, last = (int(part) for part in value.split("-"))
    return first, last


def _set_in_environment(field: str) -> str | None:
    """``OPSLOOP_<FIELD>`` when the environment sets it (names match without regard to case,
    as pydantic-settings matches them), else None."""
    env = f"OPSLOOP_{field.upper()}"
    return env if any(name.upper() == env for name in os.environ) else None


class Settings(BaseSettings):
    """opsloop's configuration.

    Attributes:
        project_dir: The project folder; found from the working directory when not set.
        store_url: Metadata store, e.g. ``postgresql+psycopg://user@host/db``.
        artifact_url: Artifact store, e.g. ``s3://bucket/prefix``.
        s3_endpoint_url: S3-compatible endpoint (MinIO, a test server).
        server: An opsloop server (``http://host:8700``): when set, the metadata store and
            the artifact store are the server's (remote mode) and no local store is opened.
        token: The bearer token for ``server`` (a secret: never shown), or a reference to it
            (``env:NAME``, ``file:PATH``).
        actor: Who is acting, recorded on every event; defaults to the login name.
        metric_buffer_size: Metric points held in memory before a batch is written.
        metric_flush_s: Longest time a metric point waits in memory before it is written,
            so that a killed process loses at most this much.
        heartbeat_s: How often a process writing a run says it is alive.
        heartbeat_timeout_s: How long a run written on another host may stay silent before
            it is taken to be killed (a run on this host is checked by its process id).
        debug: Show tracebacks in the CLI.
        ports: The range (``FIRST-LAST``) from which a new deployment gets the first free
            port; set it where only some ports are open, or to keep two checkouts apart.
    """

    model_config = SettingsConfigDict(env_prefix="OPSLOOP_", extra="ignore")

    project_dir: Path | None = None
    store_url: str | None = None
    artifact_url: str | None = None
    s3_endpoint_url: str | None = None
    server: str | None = None
    token: SecretStr | None = None
    actor: str | None = None
    metric_buffer_size: int = Field(default=10_000, ge=1, le=1_000_000)
    metric_flush_s: float = Field(default=1.0, gt=0, le=3600)
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    heartbeat_timeout_s: float = Field(default=300.0, gt=0)
    debug: bool = False
    ports: str = Field(default="8601-8999", pattern=r"^\s*\d{1,5}\s*-\s*\d{1,5}\s*$")

    @field_validator("ports")
    @classmethod
    def _ordered_ports(cls, value: str) -> str:
        first, last = _split_ports(value)
        if not 1024 <= first <= last <= 65535:
            raise ValueError(
                f"'{value}' is not a range FIRST-LAST with 1024 <= FIRST <= LAST <= 65535"
            )
        return f"{first}-{last}"

    def port_range(self) -> tuple[int, int]:
        """The first and last port a new deployment may get."""
        return _split_ports(self.ports)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values from opsloop.yaml arrive as init arguments; the environment must win over them.
        return env_settings, init_settings

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The repr of a project (in a log line, a traceback's locals) must not show a password.
        for name, value in super().__repr_args__():
            secret = (name in _URL_FIELDS or name == "server") and isinstance(value, str)
            yield name, redact_url(value) if secret else value

    def resolved_actor(self) -> str:
        """The actor name: configured, or the login name."""
        if self.actor:
            return self.actor
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


def load_settings(project_dir: Path | None = None, spec: ProjectSpec | None = None) -> Settings:
    """Settings for a project: environment first, then ``opsloop.yaml``, then defaults."""
    from_spec: dict[str, Any] = {}
    if project_dir is not None:
        from_spec["project_dir"] = project_dir
    if spec is not None:
        if spec.store is not None:
            from_spec["store_url"] = spec.store.url
        if spec.artifacts is not None:
            from_spec["artifact_url"] = spec.artifacts.url
    settings = env_settings(**from_spec)
    # env:NAME and file:PATH references are resolved here, when the project is opened: the
    # spec keeps the reference, so opsloop.yaml printed or diffed never shows the secret.
    for field in ("store_url", "artifact_url"):
        value = getattr(settings, field)
        if value is None:
            continue
        if from_spec.get(field) == value:
            warning = literal_secret_warning(value, setting=_URL_FIELDS[field])
            if warning:
                _log.warning("%s", warning)
        name = setting_name(field, settings, project_dir)
        resolved = resolve_secret(value, setting=name, base_dir=project_dir, url=True)
        if resolved != value:
            setattr(settings, field, resolved)
    if settings.token is not None:
        token = resolve_secret(
            settings.token.get_secret_value().strip(), setting="OPSLOOP_TOKEN", base_dir=project_dir
        )
        settings.token = SecretStr(token) if token else None
    # Known from now on: any message that quotes them (a driver's error) is masked.
    remember(settings.store_url)
    remember(settings.artifact_url)
    remember(settings.server)
    if settings.token is not None:
        remember_secret(settings.token.get_secret_value())
    return settings


def env_settings(**values: Any) -> Settings:
    """The settings the environment (and ``values``) give, before any reference is resolved.

    Raises:
        ConfigError: A setting is invalid; the message names it as it was set.
    """
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_settings_problem(exc)) from None


def _settings_problem(exc: ValidationError) -> str:
    """One line per invalid setting, named as the user set it (``OPSLOOP_PORTS: ...``)."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        named = _set_in_environment(field) or field
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{named}: {message} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(lines)


def default_store_url(project_dir: Path) -> str:
    """``sqlite:///<project>/.opsloop/opsloop.db``."""
    return f"sqlite:///{(project_dir / STATE_DIR / 'opsloop.db').resolve()}"


def default_artifact_url(project_dir: Path) -> str:
    """``file://<project>/.opsloop/artifacts``."""
    return (project_dir / STATE_DIR / "artifacts").resolve().as_uri()


def setting_name(field: str, settings: Settings, project_dir: Path | None = None) -> str:
    """Where the value of a setting came from, for messages about it.

    Args:
        field: ``store_url`` or ``artifact_url``.
        settings: The settings in effect.
        project_dir: The project, whose ``opsloop.yaml`` may have set it.

    Returns:
        ``OPSLOOP_STORE_URL`` when the environment set it, ``store.url in <file>`` when the
        project's ``opsloop.yaml`` did, else ``the default store_url``.
    """
    if getattr(settings, field, None) is None:
        return f"the default {field}"
    env = _set_in_environment(field)
    if env is not None:
        return env
    key = _URL_FIELDS.get(field) or field
    if project_dir is not None:
        return f"{key} in {project_dir / 'opsloop.yaml'}"
    return key
