"""The contract every runtime fulfils: report live state, apply a spec, stop, tell health."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsloop.gitops.types import Health, LiveDeployment, RuntimeSpec

__all__ = ["Runtime"]


class Runtime(ABC):
    """Where deployments run. The reconciler only talks to runtimes through this contract.

    A runtime keeps its own record of what it applied, so ``live_state`` can be compared
    with Git without asking the metadata store.
    """

    #: Name the runtime is registered under.
    name: str = ""

    @abstractmethod
    def live_state(self) -> dict[str, LiveDeployment]:
        """Every deployment this runtime runs, by name."""

    @abstractmethod
    def apply(self, name: str, desired: RuntimeSpec) -> LiveDeployment:
        """Make deployment ``name`` run ``desired``; return its live state afterwards.

        Raises:
            GitOpsError: The spec cannot be applied (a port in use, a server that did not
                become ready …). What ran before keeps running where that is possible.
        """

    @abstractmethod
    def stop(self, name: str) -> None:
        """Stop deployment ``name`` and forget it; stopping an unknown name does nothing."""

    @abstractmethod
    def health(self, name: str) -> Health:
        """Health of deployment ``name`` (``Missing`` when the runtime does not run it)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes hold nothing
        """Release what the runtime holds in this process (servers keep running)."""
