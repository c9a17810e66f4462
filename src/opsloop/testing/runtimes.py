"""The runtime contract: apply a spec, report it live, tell its health, stop it.

Each check takes a factory of runtime objects over one place (one project folder, one
manifest folder, one cluster namespace …): two objects from the factory must see the same
deployments. The checks apply deployments named ``contract-*`` with free local ports, and
stop every one they applied::

    from opsloop.testing import check_runtime
    check_runtime(lambda: MyRuntime(namespace="opsloop-test"), model="churn", versions=(1, 2))

A runtime that starts real model servers needs ``model`` registered with ``versions``.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from opsloop.gitops.runtime.base import Runtime
from opsloop.gitops.types import HealthStatus, RuntimeSpec
from opsloop.testing._core import Check, run_checks

__all__ = ["RuntimeFactory", "check_runtime", "yield_runtime_checks"]

RuntimeFactory = Callable[[], Runtime]
"""Builds a runtime object over the place the checks use."""

UP = frozenset({HealthStatus.HEALTHY, HealthStatus.PROGRESSING, HealthStatus.UNKNOWN})
"""Health a deployment may report right after it was applied, by default."""

Up = Collection[HealthStatus]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spec(name: str, model: str, version: int, **kw: object) -> RuntimeSpec:
    data: dict[str, object] = {
        "name": name,
        "model": model,
        "version": version,
        "traffic": {version: 100.0},
        "port": _free_port(),
    }
    data.update(kw)
    return RuntimeSpec.model_validate(data)


@contextmanager
def _runtime(make: RuntimeFactory, *names: str) -> Iterator[Runtime]:
    runtime = make()
    assert isinstance(runtime, Runtime), f"the factory returned {runtime!r}, not a Runtime"
    try:
        yield runtime
    finally:
        for name in names:
            runtime.stop(name)
        runtime.close()


def check_apply_then_stop(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """An applied spec is live and up; a stopped deployment is gone and Missing."""
    name = "contract-apply"
    with _runtime(make, name) as runtime:
        desired = _spec(name, model, versions[0])
        live = runtime.apply(name, desired)
        assert live.name == name and live.spec == desired, live
        assert 0 <= live.running <= desired.replicas, live.running
        state = runtime.live_state()
        assert name in state, f"{name} is not in live_state() after apply: {sorted(state)}"
        assert state[name].spec == desired, state[name].spec
        health = runtime.health(name)
        assert health.status in up, health
        runtime.stop(name)
        assert name not in runtime.live_state(), "a stopped deployment is still live"
        assert runtime.health(name).status == HealthStatus.MISSING, runtime.health(name)


def check_unknown_deployment_is_missing(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """A name never applied is not live, is Missing, and stopping it does nothing."""
    name = "contract-never-applied"
    with _runtime(make) as runtime:
        assert name not in runtime.live_state()
        assert runtime.health(name).status == HealthStatus.MISSING, runtime.health(name)
        runtime.stop(name)
        assert name not in runtime.live_state()


def check_a_changed_spec_replaces_the_live_one(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """Applying the same spec again changes nothing; a changed split becomes the live spec."""
    name = "contract-change"
    with _runtime(make, name) as runtime:
        first = _spec(name, model, versions[0])
        runtime.apply(name, first)
        runtime.apply(name, first)
        assert runtime.live_state()[name].spec == first
        split = {versions[0]: 50.0, versions[1]: 50.0}
        changed = first.model_copy(update={"traffic": split})
        live = runtime.apply(name, changed)
        assert live.spec == changed, live.spec
        assert runtime.live_state()[name].spec == changed, runtime.live_state()[name].spec
        assert runtime.health(name).status in up, runtime.health(name)


def check_zero_replicas_is_suspended(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """A deployment scaled to 0 replicas runs none and is Suspended."""
    name = "contract-suspend"
    with _runtime(make, name) as runtime:
        desired = _spec(name, model, versions[0])
        runtime.apply(name, desired)
        runtime.apply(name, desired.model_copy(update={"replicas": 0}))
        live = runtime.live_state()[name]
        assert live.running == 0 and live.spec.replicas == 0, live
        assert runtime.health(name).status == HealthStatus.SUSPENDED, runtime.health(name)


def check_state_survives_a_new_runtime_object(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """A new runtime object sees what another applied, and can stop it."""
    name = "contract-again"
    with _runtime(make, name) as first:
        desired = _spec(name, model, versions[0])
        first.apply(name, desired)
        with _runtime(make) as again:
            assert again.live_state()[name].spec == desired
            assert again.health(name).status in up, again.health(name)
            again.stop(name)
        assert name not in first.live_state(), "a deployment stopped by another object is live"


def check_deployments_are_independent(
    make: RuntimeFactory, model: str, versions: tuple[int, int], up: Up
) -> None:
    """Stopping one deployment leaves another running as it was."""
    a, b = "contract-one", "contract-two"
    with _runtime(make, a, b) as runtime:
        spec_a = _spec(a, model, versions[0])
        spec_b = _spec(b, model, versions[1])
        runtime.apply(a, spec_a)
        runtime.apply(b, spec_b)
        state = runtime.live_state()
        assert state[a].spec == spec_a and state[b].spec == spec_b
        runtime.stop(a)
        state = runtime.live_state()
        assert a not in state and state[b].spec == spec_b, sorted(state)
        assert runtime.health(b).status in up, runtime.health(b)


_CHECKS = (
    check_apply_then_stop,
    check_unknown_deployment_is_missing,
    check_a_changed_spec_replaces_the_live_one,
    check_zero_replicas_is_suspended,
    check_state_survives_a_new_runtime_object,
    check_deployments_are_independent,
)


def yield_runtime_checks(
    *, model: str = "churn", versions: tuple[int, int] = (1, 2), up: Up = UP
) -> Iterator[Check[RuntimeFactory]]:
    """Every check of the runtime contract; each takes a factory of runtime objects.

    Args:
        model: The model the deployments serve.
        versions: Two of its versions (a canary split uses both).
        up: The health a deployment may report once applied (a runtime that waits for its
            servers to be ready says ``{HealthStatus.HEALTHY}``).
    """
    for func in _CHECKS:
        bound = functools.partial(func, model=model, versions=versions, up=frozenset(up))
        yield Check(func.__name__, bound)


def check_runtime(
    make: RuntimeFactory,
    *,
    model: str = "churn",
    versions: tuple[int, int] = (1, 2),
    up: Up = UP,
) -> None:
    """Run the whole runtime contract on the runtimes ``make()`` builds.

    Args:
        make: Builds a runtime object; every object it builds sees the same deployments.
        model: The model the deployments serve.
        versions: Two of its versions.
        up: The health a deployment may report once applied.

    Raises:
        AssertionError: A check failed; the message names every failing check.
    """
    checks = yield_runtime_checks(model=model, versions=versions, up=up)
    run_checks(checks, lambda: make, "runtime")
