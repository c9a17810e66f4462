"""HTTP JSON API sources against a real server on 127.0.0.1: next links, page numbers and
cursors, incremental loads past a watermark, and failures as clear errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import pytest

from opsloop.data.sources import load_source
from opsloop.errors import DataError
from opsloop.spec.schema import DataSection

if TYPE_CHECKING:
    from opsloop.context import Project

PAGE = 3


class _Api:
    """The records the server holds, and the requests it saw."""

    def __init__(self) -> None:
        self.records = [
            {"id": i, "seen": f"2026-02-01T00:{i:02d}:00", "fee": i * 1.5, "meta": {"plan": "b"}}
            for i in range(7)
        ]
        self.auth: list[str | None] = []


def _page(api: _Api, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
    if path == "/links":
        start = int(query.get("start", ["0"])[0])
        items = api.records[start : start + PAGE]
        nxt = f"/links?start={start + PAGE}" if start + PAGE < len(api.records) else None
        return 200, {"data": {"items": items}, "links": {"next": nxt}}
    if path == "/pages":
        page = int(query.get("page", ["1"])[0])
        return 200, {"results": api.records[(page - 1) * PAGE : page * PAGE]}
    if path == "/cursor":
        start = int(query.get("after", ["0"])[0])
        items = api.records[start : start + PAGE]
        more = start + PAGE < len(api.records)
        return 200, {"items": items, "next_cursor": str(start + PAGE) if more else ""}
    if path == "/plain":
        return 200, api.records
    if path == "/loop":
        return 200, {"items": [{"id": 1}], "next": "/loop"}
    return 404, {"error": "no such endpoint"}


@pytest.fixture
def api() -> Iterator[tuple[str, _Api]]:
    state = _Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            state.auth.append(self.headers.get("Authorization"))
            status, body = _page(state, url.path, parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _section(**source: object) -> DataSection:
    return DataSection.model_validate({"name": "api", "source": source})


STYLES = {
    "/links": {"records": "data.items", "pagination": "next_link", "next": "links.next"},
    "/pages": {"records": "results", "pagination": "page"},
    "/cursor": {
        "records": "items",
        "pagination": "cursor",
        "next": "next_cursor",
        "cursor_param": "after",
    },
    "/plain": {},
}


def test_every_pagination_style_reads_every_record(project: Project, api: tuple[str, _Api]) -> None:
    base, _ = api
    for path, adapter in STYLES.items():
        data = DataSection.model_validate(
            {"name": path.strip("/"), "source": {"url": base + path, **adapter}}
        )
        assert data.source.kind == "http"  # type: ignore[union-attr]
        load = load_source(project, data)
        assert load.frame["id"].tolist() == list(range(7)), path
        assert "meta.plan" in load.frame.columns
        assert load.record.rows == 7


def test_incremental_http_loads_keep_only_new_records(
    project: Project, api: tuple[str, _Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = api
    monkeypatch.setenv("API_TOKEN", "Bearer tok-secret-123")
    data = _section(
        url=base + "/cursor",
        records="items",
        pagination="cursor",
        next="next_cursor",
        cursor_param="after",
        watermark="id",
        headers={"Authorization": "env:API_TOKEN"},
    )
    first = load_source(project, data)
    assert first.record.new_rows == 7
    assert set(state.auth) == {"Bearer tok-secret-123"}
    state.records.append(
        {"id": 7, "seen": "2026-02-02T00:00:00", "fee": 1.0, "meta": {"plan": "p"}}
    )
    second = load_source(project, data)
    assert (second.record.rows, second.record.new_rows) == (8, 1)
    assert second.frame["id"].tolist() == list(range(8))
    assert second.record.watermark == {"type": "int", "value": 7}


def test_http_failures_are_clear_errors(project: Project, api: tuple[str, _Api]) -> None:
    base, _ = api
    with pytest.raises(DataError, match="answered 404"):
        load_source(project, _section(url=base + "/missing"))
    with pytest.raises(DataError, match=r"has no .nothing\.here."):
        load_source(project, _section(url=base + "/links", records="nothing.here"))
    with pytest.raises(DataError, match="max_pages=5"):
        load_source(
            project,
            _section(url=base + "/loop", records="items", pagination="next_link", max_pages=5),
        )
    with pytest.raises(DataError, match=r"127\.0\.0\.1:1"):
        load_source(project, _section(kind="http", url="http://u:pw@127.0.0.1:1/x", timeout_s=2))
