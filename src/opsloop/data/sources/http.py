"""Read records from an HTTP JSON API, following its pagination.

A small declared adapter (:class:`opsloop.spec.sources.HttpSource`) says where the records
are in a page and how the next page is named: a next link, a page number or a cursor. httpx
does the requests; the adapter's loop is a few lines, written here because the three
pagination styles are all an API of this kind needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from opsloop.errors import DataError
from opsloop.redact import redact, redact_url

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from opsloop.spec.sources import HttpSource

__all__ = ["fetch_records", "read_http_source"]


def _at(page: Any, path: str, what: str, url: str) -> Any:
    value = page
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None if what == "next" else _missing(path, url)
    return value


def _missing(path: str, url: str) -> Any:
    raise DataError(
        f"data.source: the page {redact_url(url)} has no '{path}' (data.source.records)"
    )


def _get(client: httpx.Client, url: str, params: Mapping[str, Any]) -> Any:
    try:
        # Empty params would replace the query string a next link carries.
        response = client.get(url, params=dict(params) or None)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPStatusError as exc:
        raise DataError(
            f"data.source: {redact_url(str(exc.request.url))} answered "
            f"{exc.response.status_code} {exc.response.reason_phrase}"
        ) from None
    except httpx.HTTPError as exc:
        raise DataError(f"data.source: {redact_url(url)}: {redact(str(exc))}") from None
    except ValueError as exc:
        raise DataError(f"data.source: {redact_url(url)} did not answer JSON: {exc}") from None


def fetch_records(
    source: HttpSource,
    *,
    url: str,
    headers: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the records of every page.

    Args:
        source: The adapter.
        url: The first page's URL (its secret reference resolved).
        headers: The request headers (resolved).
        transport: An httpx transport (tests).

    Raises:
        DataError: A page fails, is not JSON, has no records where the adapter says, or the
            pages do not end within ``max_pages``.
    """
    with httpx.Client(
        headers=dict(headers),
        timeout=source.timeout_s,
        transport=transport,
        follow_redirects=True,
    ) as client:
        next_url: str | None = url
        params: dict[str, Any] = {}
        page_number = 1
        if source.pagination == "page":
            params[source.page_param] = page_number
        for _ in range(source.max_pages):
            assert next_url is not None
            page = _get(client, next_url, params)
            records = _at(page, source.records, "records", next_url)
            if not isinstance(records, list):
                raise DataError(
                    f"data.source: '{source.records or '(the page)'}' of {redact_url(next_url)} "
                    f"is not a list of records"
                )
            for record in records:
                if not isinstance(record, dict):
                    raise DataError(
                        f"data.source: a record of {redact_url(next_url)} is not an object: "
                        f"{str(record)[:80]!r}"
                    )
                yield record
            if source.pagination == "none":
                return
            if source.pagination == "page":
                if not records:
                    return
                page_number += 1
                params = {source.page_param: page_number}
                continue
            following = _at(page, source.next, "next", next_url)
            if following in (None, ""):
                return
            if source.pagination == "next_link":
                next_url = str(httpx.URL(next_url).join(str(following)))
                params = {}
            else:
                params = {source.cursor_param: following}
        raise DataError(
            f"data.source: {redact_url(url)} still had pages after max_pages={source.max_pages}",
            hint="raise data.source.max_pages, or check that the API's last page ends",
        )


def read_http_source(
    source: HttpSource,
    *,
    url: str,
    headers: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
) -> pd.DataFrame:
    """The records of every page as one frame (nested objects flattened to ``a.b``)."""
    records = list(fetch_records(source, url=url, headers=headers, transport=transport))
    if not records:
        return pd.DataFrame()
    return pd.json_normalize(records)
