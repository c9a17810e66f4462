"""A model server in its own process, for tests that send it signals.

Usage: ``python -m tests.serve.serverproc [--model test:KIND/VERSION ...] [--log FILE]
[--feedback FILE] [--max-wait-ms MS] [--store URL --deployment NAME] [limits …]``. Prints
``PORT <n>`` once the socket is bound. The server token, when wanted, comes from
``OPSLOOP_SERVE_TOKEN`` (as for ``opsloop serve``).
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--store", help="store URL: predictions and feedback go there")
    parser.add_argument("--deployment", default="")
    parser.add_argument("--limit-concurrency", type=int, default=4096)
    parser.add_argument("--max-per-client", type=int, default=256)
    parser.add_argument("--header-timeout", type=float, default=5.0)
    parser.add_argument("--feedback-rate", type=float, default=200.0)
    parser.add_argument("--feedback-burst", type=int, default=2000)
    parser.add_argument("--max-feedback-labels", type=int, default=1000)
    parser.add_argument("--recent-requests", type=int, default=100_000)
    args = parser.parse_args()
    models = [load(uri) for uri in args.model or ["test:churn/1"]]
    predictions = open_sink(args.log) if args.log else None
    feedback = open_sink(args.feedback) if args.feedback else None
    if args.store:
        from opsloop.serve.store_sink import StoreFeedbackSink, StorePredictionSink  # noqa: PLC0415
        from opsloop.store import open_store  # noqa: PLC0415

        store = open_store(args.store)
        predictions = StorePredictionSink(store, args.deployment)
        feedback = StoreFeedbackSink(store, args.deployment)
    config = ServerConfig(
        models=models,
        port=0,
        max_wait_ms=args.max_wait_ms,
        prediction_sink=predictions,
        feedback_sink=feedback,
        log_queue_size=args.log_queue,
        log_flush_interval_s=args.log_flush,
        graceful_timeout_s=20,
        loader=load,
        token=os.environ.get("OPSLOOP_SERVE_TOKEN") or None,
        limit_concurrency=args.limit_concurrency,
        max_connections_per_client=args.max_per_client,
        header_timeout_s=args.header_timeout,
        feedback_rate=args.feedback_rate,
        feedback_burst=args.feedback_burst,
        max_feedback_labels=args.max_feedback_labels,
        recent_requests=args.recent_requests,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    serve(config, sock=sock)


if __name__ == "__main__":
    main()
