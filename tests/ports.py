"""Free ports for servers a test starts later, chosen outside the kernel's ephemeral range.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` lies in the ephemeral range, from
which every outgoing connection of the machine also takes its local port: between the test
choosing it and a server binding it (or binding it again after a crash) a client of another
test can hold it. Ports from 20000 to 32767 are below Linux's default ephemeral range; each
parallel worker starts its search at a random place of a slice of its own.
"""

from __future__ import annotations

import os
import random
import socket

_LOW, _HIGH = 20_000, 32_768
_SLICES = 4


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port of 127.0.0.1 nothing is bound to now, outside the ephemeral range."""
    high = min(_HIGH, _ephemeral_low())
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % _SLICES if worker[2:].isdigit() else 0
    size = (high - _LOW) // _SLICES
    start = _LOW + index * size
    offset = random.randrange(size)
    for step in range(size):
        port = start + (offset + step) % size
        if _bindable(port):
            return port
    # Every port of the slice is taken: let the kernel choose.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
