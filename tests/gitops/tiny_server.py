"""A minimal model-server stand-in for fast runtime tests.

It takes the arguments the local runtime gives ``opsloop serve`` and answers the two things
the runtime relies on: ``/v2/health/ready`` and the admin endpoint's routing table (changes
through it are refused with 501, so the runtime must restart it). ``TINY_FAIL=1`` makes it
exit at once with a message, like a server whose model does not load. With
``OPSLOOP_ADMIN_TOKEN`` in its environment, the admin endpoint wants that token, as the real
server does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uris", nargs="+")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deployment", default="")
    parser.add_argument("--traffic", action="append", default=[])
    parser.add_argument("--shadow", action="append", default=[])
    args = parser.parse_args()
    if os.environ.get("TINY_FAIL") == "1":
        print("error: model failed to load: boom", flush=True)
        sys.exit(3)
    model = args.uris[0].removeprefix("models:/").split("/")[0]
    versions = [u.rsplit("/", 1)[1] for u in args.uris]
    # Same forms as opsloop serve: --traffic MODEL=V:W,V:W and --shadow MODEL=V,V
    traffic = {
        part.split(":")[0]: float(part.split(":")[1])
        for t in args.traffic
        for part in t.split("=", 1)[1].split(",")
    }
    shadow = [v for s in args.shadow for v in s.split("=", 1)[1].split(",")]
    table = {model: {"versions": versions, "traffic": traffic, "shadow": shadow}}
    admin = os.environ.get("OPSLOOP_ADMIN_TOKEN", "")

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v2/health/ready":
                self._send(200, {"ready": True})
            elif self.path == "/v1/admin/models":
                if admin and self.headers.get("authorization") != f"Bearer {admin}":
                    self._send(401, {"error": "unauthenticated"})
                else:
                    self._send(200, {"models": table})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            self._send(501, {"error": "this server has no model loader configured"})

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"tiny server for {args.deployment} on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
