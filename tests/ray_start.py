"""``ray start`` for the test cluster, patient with a busy machine.

Ray gives a new node 30 s (a constant in its code) to appear in the cluster table; a test
machine running other suites in parallel can take longer to start a node's Python agents.
This runs Ray's own ``ray start`` command with that one lookup retried for up to three
minutes instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import ray._private.services as services
from ray.scripts.scripts import main

_get_node = services.get_node
PATIENCE_S = 180.0


def _patient_get_node(*args: Any, **kwargs: Any) -> Any:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            return _get_node(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


services.get_node = _patient_get_node  # type: ignore[assignment]

if __name__ == "__main__":
    sys.argv[0] = "ray"
    main()
