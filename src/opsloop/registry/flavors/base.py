"""The flavor contract: how one kind of model is written to and read from bytes safely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from opsloop.registry.trust import TypeRef

__all__ = ["Flavor"]


@runtime_checkable
class Flavor(Protocol):
    """One model format. A flavor never loads a model with pickle.

    A flavor reports what a model file names; it never decides what to trust
    (:mod:`opsloop.registry.trust` does).

    Attributes:
        name: Recorded as ``flavor`` in ``MLmodel``.
        model_file: File name of the model inside a packaged folder.
    """

    name: str
    model_file: str

    def accepts(self, model: Any) -> bool:
        """Whether this flavor can package ``model``."""
        ...

    def dump(self, model: Any) -> bytes:
        """Serialize ``model``."""
        ...

    def references(self, data: bytes) -> list[TypeRef]:
        """Every type and function loading ``data`` would import, without loading anything."""
        ...

    def load(self, data: bytes, trusted: list[str]) -> Any:
        """Load a model from ``data``, trusting exactly ``trusted`` beyond the format's defaults.

        ``trusted`` must have passed :func:`opsloop.registry.trust.check_types`.
        """
        ...
