"""The ML lifecycle declared in ``opsloop.yaml``, run as cached pipeline phases."""

from opsloop.lifecycle.driver import PHASES, LifecycleOutcome, lifecycle_params, run_lifecycle

__all__ = ["PHASES", "LifecycleOutcome", "lifecycle_params", "run_lifecycle"]
