"""Project-looking names that are really dangerous objects, for the real-module checks."""

from __future__ import annotations

import functools
import os
import subprocess
from typing import Any

import numpy as np

run = os.system
evaluate = eval
reader = functools.partial(np.load, allow_pickle=True)


class Spawner(subprocess.Popen):  # type: ignore[type-arg]
    """A project class that is a process launcher underneath."""


@functools.wraps(os.system)
def wrapped(command: str) -> int:
    """A wrapper that says where it came from."""
    return os.system(command)


def double(x: Any) -> Any:
    """A harmless project function."""
    return x * 2
