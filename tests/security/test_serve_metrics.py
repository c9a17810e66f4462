"""/metrics cardinality against a real server process: thousands of requests naming random
models, versions and query strings leave the metrics the same size."""

from __future__ import annotations

import random
import socket
import string
import threading

import httpx
import orjson

from tests.serve.conftest import server_process

ROWS = {"instances": [[30, 61.5, "paris", True]]}


def _junk(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))


def _post_all(port: int, requests: list[tuple[str, dict[str, str]]], workers: int = 8) -> list[int]:
    """POST every request over a few keep-alive connections; the status codes, in order.

    Plain sockets: an HTTP client library would cost more CPU than the server under test.
    """
    body = orjson.dumps(ROWS)
    statuses = [0] * len(requests)

    def work(start: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            reader = sock.makefile("rb")
            for i in range(start, len(requests), workers):
                path, headers = requests[i]
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n{extra}\r\n".encode()
                    + body
                )
                status = int(reader.readline().split()[1])
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                statuses[i] = status

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_random_names_and_versions_do_not_grow_the_metrics() -> None:
    rng = random.Random(7)
    with server_process() as (_, url):
        before = httpx.get(f"{url}/metrics").text
        junk = [_junk(rng) for _ in range(2500)]
        requests: list[tuple[str, dict[str, str]]] = []
        for i, word in enumerate(junk):
            kind = i % 5
            if kind == 0:
                requests.append((f"/v2/models/{word}/infer", {}))
            elif kind == 1:
                requests.append((f"/v2/models/churn/versions/{word}/infer", {}))
            elif kind == 2:
                requests.append((f"/invocations?model={word}&version=../../{word}", {}))
            elif kind == 3:
                requests.append((f"/invocations?version={word}", {}))
            else:
                requests.append(("/invocations", {"x-opsloop-model": word}))
        statuses = _post_all(int(url.rsplit(":", 1)[1]), requests)
        after = httpx.get(f"{url}/metrics").text
    assert set(statuses) == {404}
    # A handful of new series (the 'unknown' labels), not one per request: a few KB at most.
    assert len(after) - len(before) < 4_000, len(after) - len(before)
    assert not any(word in after for word in junk)
    assert "etc" not in after


def test_an_infer_path_with_a_trailing_newline_is_not_an_inference_route() -> None:
    # Paths arrive percent-decoded: '%0A' is a newline that a '$'-anchored pattern accepts.
    with server_process() as (_, url):
        port = int(url.rsplit(":", 1)[1])
        statuses = _post_all(port, [("/v2/models/churn/infer%0A", {})], workers=1)
    assert statuses == [404]
