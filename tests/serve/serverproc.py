"""A model server in its own process, for tests that send it signals.

Usage: ``python -m tests.serve.serverproc [--model test:KIND/VERSION ...] [--log FILE]
[--feedback FILE] [--max-wait-ms MS]``. Prints ``PORT <n>`` once the socket is bound.
"""

from __future__ import annotations

import argparse
import socket

from opsloop.serve import ServerConfig, open_sink, serve
from tests.serve.models import load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--log")
    parser.add_argument("--feedback")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--log-queue", type=int, default=10_000)
    parser.add_argument("--log-flush", type=float, default=0.1)
    args = parser.parse_args()
    models = [load(uri) for uri in args.model or ["test:churn/1"]]
    config = ServerConfig(
        models=models,
        port=0,
        max_wait_ms=args.max_wait_ms,
        prediction_sink=open_sink(args.log) if args.log else None,
        feedback_sink=open_sink(args.feedback) if args.feedback else None,
        log_queue_size=args.log_queue,
        log_flush_interval_s=args.log_flush,
        graceful_timeout_s=20,
        loader=load,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    serve(config, sock=sock)


if __name__ == "__main__":
    main()
