"""The ``executor:`` section of ``opsloop.yaml``: where pipeline steps run.

::

    executor:
      name: ray            # local (default), inline or ray
      address: auto        # ray only: auto, ray://host:10001, or unset for RAY_ADDRESS / a new
                           # local cluster
      max_workers: 8       # steps at once (default: CPU count, or the cluster's CPUs)

``opsloop run --executor`` and ``--address`` override it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ExecutorSection"]

_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+(:\d+)?|[^\s/:]+:\d+)\Z")


class ExecutorSection(BaseModel):
    """Which executor runs pipeline steps, and its options.

    Attributes:
        name: ``local``, ``inline``, ``ray``, or an executor a plugin registers.
        address: The Ray cluster (``auto``, ``ray://host:10001``, ``host:port``); ray only.
        max_workers: Steps run at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="local", min_length=1)
    address: str | None = None
    max_workers: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ``executor: ray`` is ``executor: {name: ray}``.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS.fullmatch(v):
            raise ValueError(f"{v!r} is not a Ray address: use auto, ray://host:10001 or host:port")
        return v

    @model_validator(mode="after")
    def _address_for_ray(self) -> ExecutorSection:
        if self.address is not None and self.name != "ray":
            raise ValueError(f"address is for the ray executor, not '{self.name}'")
        return self

    def options(self) -> dict[str, Any]:
        """Keyword options of the executor's factory (besides ``max_workers``)."""
        return {"address": self.address} if self.address is not None else {}
