"""What the routers of ``/api/v1`` share: the caller, pages, and writes made for a caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from opsloop.api import deps
from opsloop.context import Project
from opsloop.secops.access import Identity
from opsloop.spec.schema import AccessSection
from opsloop.store import Store
from opsloop.store.acting import Actor, acting

__all__ = [
    "BodyTooLargeError",
    "Caller",
    "Page",
    "PolicyDep",
    "ProjectDep",
    "StoreDep",
    "git_lock",
    "read_body",
    "writing",
]

T = TypeVar("T")

#: The authenticated caller of a request.
Caller = Annotated[Identity, Depends(deps.identity)]
#: The project the server serves.
ProjectDep = Annotated[Project, Depends(deps.project)]
#: The project's metadata store.
StoreDep = Annotated[Store, Depends(deps.store)]
#: The project's access policy: protected aliases, production deployments.
PolicyDep = Annotated[AccessSection, Depends(deps.access_policy)]

#: Commits to the project's repository are made one at a time: two requests must not stage
#: into one index at once.
git_lock = threading.Lock()


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


@contextmanager
def writing(request: Request, caller: Identity) -> Iterator[Actor]:
    """Record every store write (and Git commit) inside the block as the caller's, from the
    client's address."""
    with acting(caller.name, source=deps.client_source(request)) as actor:
        yield actor


class BodyTooLargeError(Exception):
    """A request body is larger than a route takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit:,} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """A request body read whole, refused as soon as it is larger than ``limit`` bytes (by
    its declared length, or while it streams in).

    Raises:
        BodyTooLargeError: It is.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
