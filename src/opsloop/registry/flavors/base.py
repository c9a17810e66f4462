"""The flavor contract: how one kind of model is written to and read from bytes safely."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Flavor"]


@runtime_checkable
class Flavor(Protocol):
    """One model format. A flavor never loads a model with pickle.

    Attributes:
        name: Recorded as ``flavor`` in ``MLmodel``.
        model_file: File name of the model inside a packaged folder.
    """

    name: str
    model_file: str

    def accepts(self, model: Any) -> bool:
        """Whether this flavor can package ``model``."""
        ...

    def dump(self, model: Any) -> tuple[bytes, list[str]]:
        """Serialize ``model``; return the bytes and the types they need trusted to load."""
        ...

    def untrusted_types(self, data: bytes) -> list[str]:
        """Types in ``data`` that are not trusted by default, without loading anything."""
        ...

    def load(self, data: bytes, trusted: list[str]) -> Any:
        """Load a model from ``data``, trusting exactly ``trusted`` beyond the defaults."""
        ...
