"""The pages' only way to data: the control plane's REST API, called in process through an
ASGI transport with the visitor's token, so a page sees exactly what the visitor's API calls
would (roles, grants, refusals) and nothing the API does not answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["ApiClient", "ApiError", "LoginRequired"]


class LoginRequired(Exception):  # noqa: N818 - control flow of the pages, not an error
    """The API refused the visitor's token (or the lack of one): the page sends them to
    the login page."""


class ApiError(Exception):
    """The API answered a problem: its status and detail, shown on the page."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ApiClient:
    """Calls ``/api/v1`` of ``app`` as the holder of ``token`` (None: no header)."""

    def __init__(self, app: ASGIApp, token: str | None, *, client_host: str = "127.0.0.1") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(client_host, 0)),
            base_url="http://opsloop.internal/api/v1",
            headers=headers,
            timeout=120,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    @staticmethod
    def _check(response: httpx.Response) -> Any:
        if response.status_code == 401:
            raise LoginRequired
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail") or body.get("title") or response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/octet-stream"):
            return response.content
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        """The JSON of ``GET path`` (raw bytes for a download)."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self._check(await self._client.get(path, params=clean))

    async def items(self, path: str, *, cap: int = 1000, **params: Any) -> list[Any]:
        """Every item of a paged list, up to ``cap``."""
        out: list[Any] = []
        cursor = None
        while len(out) < cap:
            page = await self.get(path, cursor=cursor, limit=min(1000, cap - len(out)), **params)
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of a write."""
        return self._check(await self._client.request(method, path, json=body))
