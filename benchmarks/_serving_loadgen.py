"""Fallback load generator for benchmarks/serving.py when ``wrk`` is not available.

Closed loop: CONCURRENCY keep-alive HTTP/1.1 connections, each sending the same POST as soon
as its previous answer is read, for WARMUP + DURATION seconds; only the DURATION part counts.
Prints one JSON line with the same fields the wrk script reports.

Usage: ``python benchmarks/_serving_loadgen.py URL BODY_FILE CONCURRENCY DURATION WARMUP``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


async def connection(
    host: str,
    port: int,
    request: bytes,
    start_at: float,
    stop_at: float,
    latencies: list[float],
    counts: dict[str, int],
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        counts["connect"] += 1
        return
    try:
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if sent >= start_at:
                latencies.append(time.perf_counter() - sent)
                if not 200 <= status < 400:
                    counts["status"] += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        counts["read"] += 1
    finally:
        writer.close()


async def main() -> None:
    url, body_file, concurrency, duration, warmup = sys.argv[1:6]
    parts = urlsplit(url)
    body = Path(body_file).read_bytes()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    start_at = time.perf_counter() + float(warmup)
    stop_at = start_at + float(duration)
    latencies: list[float] = []
    counts = {"connect": 0, "read": 0, "status": 0}
    await asyncio.gather(
        *(
            connection(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                request,
                start_at,
                stop_at,
                latencies,
                counts,
            )
            for _ in range(int(concurrency))
        )
    )
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e6
            if latencies
            else 0
        )

    print(
        json.dumps(
            {
                "requests": len(latencies),
                "duration_us": float(duration) * 1e6,
                "p50_us": pct(50),
                "p99_us": pct(99),
                "non2xx": counts["status"],
                "connect": counts["connect"],
                "read": counts["read"],
                "write": 0,
                "timeout": 0,
            }
        )
    )


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
