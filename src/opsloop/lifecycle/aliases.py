"""Moving a model alias, with a move back to an older version treated as a rollback.

An alias such as ``champion`` is what deployments follow and what the next evaluation
compares against. Moving it to an older version undoes a promotion, so it happens only when
asked for (``--allow-rollback``); a deployment's own ``opsloop rollback`` is the other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsloop.errors import NotFoundError, RollbackError
from opsloop.registry.admission import require_alias_admitted

if TYPE_CHECKING:
    from opsloop.store import Store

__all__ = ["AliasMove", "check_alias_move", "move_alias"]


@dataclass(frozen=True)
class AliasMove:
    """An alias moved (or about to move) from ``previous`` to ``version``."""

    model: str
    alias: str
    version: int
    previous: int | None

    @property
    def moved(self) -> bool:
        """Whether the alias points elsewhere than before."""
        return self.previous != self.version

    @property
    def rollback(self) -> bool:
        """Whether the alias goes back to an older version."""
        return self.previous is not None and self.version < self.previous


def _current(store: Store, model: str, alias: str) -> int | None:
    try:
        return store.models.get_version_by_alias(model, alias).version
    except NotFoundError:
        return None


def check_alias_move(
    store: Store, model: str, alias: str, version: int, *, allow_rollback: bool = False
) -> AliasMove:
    """The move of ``model@alias`` to ``version``, refused when it is an unasked rollback or
    the admission policy refuses the version (a refusal is recorded as an event).

    Raises:
        RollbackError: The alias points at a newer version and ``allow_rollback`` is false.
        SecurityError: The admission policy refuses the version.
        NotFoundError: The model or the version does not exist.
    """
    info = store.models.get_version(model, version)
    move = AliasMove(model, alias, version, _current(store, model, alias))
    if move.moved:
        require_alias_admitted(store, model, alias, version, info.details)
    if move.rollback and not allow_rollback:
        raise RollbackError(
            f"{model}@{alias} is v{move.previous}; moving it back to v{version} is a rollback",
            hint="add --allow-rollback to move it anyway, or roll a deployment back with "
            "'opsloop rollback DEPLOYMENT'",
        )
    return move


def move_alias(
    store: Store, model: str, alias: str, version: int, *, allow_rollback: bool = False
) -> AliasMove:
    """Point ``model@alias`` at ``version`` (see :func:`check_alias_move`)."""
    move = check_alias_move(store, model, alias, version, allow_rollback=allow_rollback)
    if move.moved:
        store.models.set_alias(model, alias, version)
    return move
