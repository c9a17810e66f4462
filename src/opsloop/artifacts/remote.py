"""The artifact store of a team server (remote mode), over its ``/api/v1/blobs`` routes.

Blobs keep their content addresses: an upload names its digest and the server refuses bytes
that do not hash to it; a download is checked here again, so neither the network nor the
server can hand back other bytes. The HTTP plumbing shared with the remote metadata store
(:mod:`opsloop.store.remote`) lives here too: one keep-alive client with the bearer token, and
the problem bodies the server answers errors with, turned back into the same error classes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from opsloop.artifacts.base import CHUNK, DIGEST_PREFIX, ArtifactStore, check_digest, digest_file
from opsloop.errors import (
    ArtifactError,
    ConfigError,
    DigestMismatchError,
    NotFoundError,
    OpsloopError,
    StoreError,
)
from opsloop.errors import __all__ as _error_names
from opsloop.redact import redact, redact_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "BLOBS_PATH",
    "KEYS_PATH",
    "RemoteArtifactStore",
    "RemoteDataError",
    "error_from_problem",
    "open_client",
    "raise_for_problem",
]

BLOBS_PATH = "/api/v1/blobs"
#: Where a server publishes the public keys it signs registered versions with.
KEYS_PATH = "/api/v1/keys"
"""Where the server answers blob reads and writes."""


class RemoteDataError(ValueError):
    """The cause attached to an error the server says no retry can cure (bad records), so that
    :func:`opsloop.errors.is_data_error` tells it apart from an outage on the client too."""


def open_client(
    server: str, token: str | None, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One keep-alive HTTP client for a server, sending the token as a bearer credential.

    Raises:
        ConfigError: The server URL is not an ``http://`` or ``https://`` URL.
    """
    check_server_url(server)
    headers = {"user-agent": "opsloop"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.Client(
        base_url=server.rstrip("/"),
        headers=headers,
        timeout=httpx.Timeout(60.0, connect=10.0),
        transport=transport,
    )


def check_server_url(server: str) -> str:
    """The server URL, refused unless it is ``http(s)://HOST[:PORT][/PREFIX]``.

    Raises:
        ConfigError: It is not.
    """
    try:
        url = httpx.URL(server)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"OPSLOOP_SERVER: {redact_url(server)!r} is not a server URL",
            hint="use http://HOST:8700 or https://HOST (the address of 'opsloop server')",
        )
    return server


def _error_classes() -> dict[str, type[OpsloopError]]:
    found: dict[str, type[OpsloopError]] = {}
    for name in _error_names:
        cls = globals().get(name) or getattr(sys.modules[OpsloopError.__module__], name, None)
        if isinstance(cls, type) and issubclass(cls, OpsloopError):
            found[name] = cls
    return found


_ERRORS = _error_classes()


def error_from_problem(server: str, status: int, body: Any) -> OpsloopError:
    """The error a server's problem body describes: the class it names (among those of
    :mod:`opsloop.errors` only), with the server's message and hint.

    A body that names no known class, or is no problem at all (a proxy's page), becomes a
    ``StoreError`` naming the server and the status.
    """
    shown = redact_url(server)
    problem = body if isinstance(body, dict) else {}
    name, detail, hint = problem.get("error"), problem.get("detail"), problem.get("hint")
    cls = _ERRORS.get(name) if isinstance(name, str) else None
    if cls is None or not isinstance(detail, str):
        text = detail if isinstance(detail, str) else f"HTTP {status}"
        exc: OpsloopError = StoreError(f"opsloop server {shown} answered {status}: {text}")
    else:
        # Classes with richer constructors (SpecError, StepFailedError ...) are made without
        # them: the server's message is already the finished text.
        exc = cls.__new__(cls)
        OpsloopError.__init__(exc, detail, hint=hint if isinstance(hint, str) else None)
    if problem.get("data_error") is True:
        exc.__cause__ = RemoteDataError(exc.message)
    return exc


def raise_for_problem(server: str, response: httpx.Response) -> None:
    """Raise the error a failed response describes; return on success."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_from_problem(server, response.status_code, body)


def network_error(server: str, exc: httpx.HTTPError, what: str) -> str:
    """A one-line description of a failure to reach the server; never the token."""
    # httpx's messages name the URL at most; the token travels in a header only.
    reason = redact(str(exc) or type(exc).__name__, server)
    return f"opsloop server {redact_url(server)} cannot be reached ({what}): {reason}"


class RemoteArtifactStore(ArtifactStore):
    """The artifact store of an opsloop server.

    Args:
        server: The server's base URL, e.g. ``http://host:8700``.
        token: The bearer token (None: the server's local single-user mode).
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.url = f"{redact_url(self.server)}{BLOBS_PATH}"
        self._client = open_client(self.server, token, transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def server_keys(self) -> list[str]:
        """The PEM public keys the server signs registered versions with (and trusts).

        Raises:
            ArtifactError: The server cannot be reached.
        """
        try:
            response = self._client.get(KEYS_PATH)
        except httpx.HTTPError as exc:
            raise ArtifactError(network_error(self.server, exc, f"GET {KEYS_PATH}")) from exc
        raise_for_problem(self.server, response)
        return [str(k["pem"]) for k in response.json()["keys"]]

    def _path(self, digest: str) -> str:
        check_digest(digest)
        return f"{BLOBS_PATH}/{digest}"

    def _request(self, method: str, digest: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, self._path(digest), **kwargs)
        except httpx.HTTPError as exc:
            raise ArtifactError(network_error(self.server, exc, f"{method} {digest}")) from exc
        if response.status_code == 404 and method == "HEAD":
            raise NotFoundError(f"artifact {digest} is not in {self.url}")
        raise_for_problem(self.server, response)
        return response

    def exists(self, digest: str) -> bool:
        try:
            self._request("HEAD", digest)
        except NotFoundError:
            return False
        return True

    def size(self, digest: str) -> int:
        response = self._request("HEAD", digest)
        return int(response.headers.get("content-length", "0"))

    def put_bytes(self, data: bytes) -> str:
        digest = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        self._request("PUT", digest, content=data)
        return digest

    def put_file(self, path: Path) -> str:
        digest, _ = digest_file(path)
        # A model's files are often uploaded again (a re-registration): ask first.
        if not self.exists(digest):
            self._request("PUT", digest, content=_chunks(path))
        return digest

    def get_bytes(self, digest: str) -> bytes:
        data = self._request("GET", digest).content
        _check(digest, DIGEST_PREFIX + hashlib.sha256(data).hexdigest(), self.url)
        return data

    def get_file(self, digest: str, dest: Path) -> Path:
        path = self._path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        h = hashlib.sha256()
        try:
            try:
                with self._client.stream("GET", path) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise_for_problem(self.server, response)
                    with tmp.open("wb") as out:
                        for chunk in response.iter_bytes(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
            except httpx.HTTPError as exc:
                raise ArtifactError(network_error(self.server, exc, f"GET {digest}")) from exc
            _check(digest, DIGEST_PREFIX + h.hexdigest(), self.url)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        return dest

    def __repr__(self) -> str:
        return f"RemoteArtifactStore({self.url!r})"


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _check(digest: str, actual: str, where: str) -> None:
    if actual != digest:
        raise DigestMismatchError(
            f"artifact {digest} from {where} is corrupted: its content hashes to {actual}",
            hint="the server's copy is damaged, or something between altered it",
        )
