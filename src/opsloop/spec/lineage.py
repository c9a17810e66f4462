"""The ``lineage:`` section of ``opsloop.yaml``: where OpenLineage events of pipeline runs go.

    lineage:
      namespace: fraud-team          # job namespace (default: the project name)
      transports:
        - type: http                 # Marquez or any OpenLineage HTTP endpoint
          url: http://marquez:5000
          endpoint: api/v1/lineage
          api_key: env:MARQUEZ_API_KEY
        - type: file                 # one JSON event per line
          path: .opsloop/lineage.jsonl
        - type: console              # the events as log records

Without transports (the default) no event is emitted. Events go through the transports of
the ``openlineage-python`` client (``pip install 'opsloop[lineage]'``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsloop.names import check_name

__all__ = [
    "ConsoleLineageTransport",
    "FileLineageTransport",
    "HttpLineageTransport",
    "LineageSection",
    "LineageTransport",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HttpLineageTransport(_Section):
    """POST each event to an OpenLineage HTTP endpoint (Marquez's ``/api/v1/lineage``).

    Attributes:
        url: Base URL of the receiver.
        endpoint: Path of the lineage endpoint under ``url``.
        timeout: Seconds to wait for one request.
        retries: Times a request is retried on a connection error or a 5xx answer.
        api_key: Bearer token, best as a reference (``env:NAME`` or ``file:PATH``).
        compression: ``gzip`` to compress the request body.
    """

    type: Literal["http"]
    url: str = Field(min_length=1, max_length=2048)
    endpoint: str = Field(default="api/v1/lineage", max_length=1024)
    timeout: float = Field(default=5.0, gt=0, le=300)
    retries: int = Field(default=2, ge=0, le=10)
    api_key: str | None = Field(default=None, max_length=4096)
    compression: Literal["gzip"] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v


class FileLineageTransport(_Section):
    """Append each event as one JSON line to a file (relative paths: under the project).

    Attributes:
        path: The file.
    """

    type: Literal["file"]
    path: str = Field(min_length=1, max_length=4096)


class ConsoleLineageTransport(_Section):
    """Log each event (logger ``openlineage.client.transport.console``, level INFO)."""

    type: Literal["console"]


LineageTransport = Annotated[
    HttpLineageTransport | FileLineageTransport | ConsoleLineageTransport,
    Field(discriminator="type"),
]
"""One place events go."""


class LineageSection(_Section):
    """OpenLineage events of pipeline runs and steps.

    Attributes:
        namespace: Namespace of the jobs and of the step-output data sets (default: the
            project name).
        transports: Where events go; several are all used. Empty: no events.
    """

    namespace: str | None = Field(default=None, max_length=256)
    transports: list[LineageTransport] = Field(default_factory=list, max_length=16)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        return None if v is None else check_name("lineage namespace", v)

    @property
    def enabled(self) -> bool:
        """Whether any event is emitted."""
        return bool(self.transports)
