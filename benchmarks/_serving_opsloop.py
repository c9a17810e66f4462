"""The opsloop side of benchmarks/serving.py: train the pipeline and serve it.

Usage: ``python benchmarks/_serving_opsloop.py DATA_DIR PORT [--log FILE]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _serving_common import COLUMNS, train

from opsloop.serve import ColumnSpec, JsonlSink, ServerConfig, SklearnServable, serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--log", help="write the prediction log to this JSONL file")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    args = parser.parse_args()
    pipe = train(args.data, with_names=True)
    signature = [ColumnSpec(name=c, dtype="float64") for c in COLUMNS]
    model = SklearnServable("bench", "1", pipe, signature)
    serve(
        ServerConfig(
            models=[model],
            port=args.port,
            max_batch_size=args.max_batch_size,
            max_wait_ms=args.max_wait_ms,
            prediction_sink=JsonlSink(args.log, fsync=False) if args.log else None,
        )
    )


if __name__ == "__main__":
    main()
